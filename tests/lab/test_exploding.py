"""W_hh scaled up: without clipping the run stops with the trainer's one-liner; with it, it
trains. (The clipping rule itself is tested in tests/train/test_optim.py against the lecture's
formula and torch.nn.utils.clip_grad_norm_.)"""

from __future__ import annotations

import math
import random

import pytest

from elman.errors import ElmanError
from elman.lab.exploding import run, summary_lines


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    for split, n in (("train", 200), ("valid", 10), ("test", 10)):
        lines = (" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(n))
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_clipping_cures_the_explosion(corpus, tmp_path):
    out = tmp_path / "ex"
    record = run(data=str(corpus), out=out, steps=20, hidden=16, scale=3.0, lr=1.0,
                 batch_size=4, bptt=10, log_every=5)  # fmt: skip
    no_clip, clip = record["runs"]["no-clip"], record["runs"]["clip"]
    assert no_clip["error"].startswith(f"non-finite loss at step {no_clip['non_finite_step']}")
    assert no_clip["non_finite_step"] < 20
    assert clip["error"] is None and clip["steps"] == 20
    assert math.isfinite(clip["final_loss"]) and clip["final_loss"] < clip["first_loss"]
    assert all(c[2] is not None for c in clip["curve"])  # the pre-clip norm is logged
    assert (out / "exploding.png").stat().st_size > 0 and (out / "exploding.json").exists()
    lines = summary_lines(record)
    assert "non-finite loss at step" in lines[0] and "20 steps" in lines[1]
    with pytest.raises(ElmanError, match="already holds a run"):
        run(data=str(corpus), out=out, steps=2)


def test_grid_no_clip_diverges_for_every_seed_and_clipping_never(corpus, tmp_path):
    from elman.lab.exploding import grid_table, run_grid

    results = tmp_path / "grid.json"
    record = run_grid(data=str(corpus), out=tmp_path / "g", clips=[1.0, 10.0], seeds=[1, 2],
                      steps=20, hidden=16, scale=3.0, lr=1.0, batch_size=4, bptt=10,
                      results=results, command="x")  # fmt: skip
    arms = record["arms"]
    assert list(arms) == ["no-clip", "clip-1", "clip-10"]
    steps = arms["no-clip"]["non_finite_steps"]
    assert all(s is not None and s < 20 for s in steps) and arms["no-clip"]["diverged"] == 2
    for name in ("clip-1", "clip-10"):
        assert arms[name]["non_finite_steps"] == [None, None] and arms[name]["diverged"] == 0
        assert arms[name]["final_loss"]["n"] == 2
    assert arms["no-clip"]["final_loss"]["mean"] is None
    assert results.exists() and (tmp_path / "g" / "exploding.png").stat().st_size > 0
    assert "| no-clip |" in grid_table(record) and record["command"] == "x"
