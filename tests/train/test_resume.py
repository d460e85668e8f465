"""Exact resume: N steps straight = N/2 steps + ``elman train --resume`` + the rest, bit for bit.

``train.max_steps`` is a total-step target that stops a run resumably. The comparisons cover every
tensor of ``last.pt`` (weights, optimiser state, RNG state, carried hidden state), so a resume
that lost the data position, the BPTT state, the dropout RNG or the optimiser moments fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint

DROPOUT = ["model.dropout_embedding=0.3", "model.dropout_hidden=0.2", "model.dropout_output=0.3"]


def tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor inside a nested checkpoint payload, by its key path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(tensors(v, f"{prefix}/{i}"))
    return out


def assert_identical(run_a: Path, run_b: Path) -> None:
    a, b = load_checkpoint(run_a / "last.pt"), load_checkpoint(run_b / "last.pt")
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    assert any(k.startswith("/model/") for k in ta) and any(k.startswith("/rng/") for k in ta)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), f"{key} differs"
    assert a["trainer"]["global_step"] == b["trainer"]["global_step"]
    assert a["trainer"]["epoch"] == b["trainer"]["epoch"]


def batches_per_epoch(run_dir: Path) -> int:
    """Steps of epoch 1, from the metrics log of a finished run."""

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    valid = [json.loads(x) for x in lines if '"valid"' in x]
    return valid[0]["step"]


def elman_subprocess(*args: str) -> subprocess.CompletedProcess:
    """``python -m elman ARGS`` in a fresh interpreter (nothing shared with this process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "elman", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["train.schedule=fixed", "train.decay_start=1", *DROPOUT], id="sgd-dropout"),
        pytest.param(["train.optimizer=adam", "train.lr=0.01", *DROPOUT], id="adam-dropout"),
        pytest.param(["train.average_start=2", *DROPOUT], id="sgd-averaged"),
    ],
)
def test_resume_in_a_fresh_process_is_exact(recipe, tmp_path, overrides):
    straight = tmp_path / "straight"
    summary = train(recipe, overrides=overrides, out=straight)
    n = summary["global_step"]
    per_epoch = batches_per_epoch(straight)
    # Stop inside epoch 2, after an epoch end (validation, lr decay) and mid-stream, so the
    # carried hidden state, the data position and the schedule all have to survive.
    stop = per_epoch + per_epoch // 2
    assert 0 < stop % per_epoch and stop < n
    split = tmp_path / "split"
    first = train(recipe, overrides=[*overrides, f"train.max_steps={stop}"], out=split)
    assert first["interrupted"] and first["global_step"] == stop
    assert load_checkpoint(split / "last.pt")["carry"] is not None

    proc = elman_subprocess("train", "--resume", str(split))
    assert proc.returncode == 0, proc.stderr
    assert_identical(straight, split)
    # the results name the command that started the run and list both sessions
    results = json.loads((split / "results.json").read_text())
    first, second = results["sessions"]
    assert results["command"] == first["command"] and first["from_step"] == 0
    assert "--resume" in second["command"] and second["from_step"] == stop
    assert "sessions" not in json.loads((straight / "results.json").read_text())


def test_resume_in_process_over_several_stops(recipe, tmp_path):
    """Three sessions, one of them stopping exactly at an epoch end, with SGD momentum."""
    overrides = ["train.momentum=0.9", "train.lr=0.3", "train.epochs=3", *DROPOUT]
    straight = tmp_path / "straight"
    n = train(recipe, overrides=overrides, out=straight)["global_step"]
    per_epoch = batches_per_epoch(straight)
    split = tmp_path / "split"
    s = train(recipe, overrides=[*overrides, "train.max_steps=3"], out=split)
    assert s["interrupted"] and s["global_step"] == 3
    s = train(None, overrides=[f"train.max_steps={per_epoch}"], resume=split)
    assert s["interrupted"] and s["global_step"] == per_epoch  # exactly at the epoch end
    assert (split / "best.pt").is_file()  # the epoch ended: validated and saved
    s = train(None, resume=split)  # no max_steps: the stored one no longer applies
    assert not s["interrupted"] and s["global_step"] == n
    assert_identical(straight, split)


def test_max_steps_is_a_total_that_is_never_overshot(recipe, tmp_path):
    run_dir = tmp_path / "run"
    s = train(recipe, overrides=["train.max_steps=2"], out=run_dir)
    assert s["global_step"] == 2
    # Resuming with a target already reached takes no step.
    s = train(None, overrides=["train.max_steps=2"], resume=run_dir)
    assert s["interrupted"] and s["global_step"] == 2
    assert load_checkpoint(run_dir / "last.pt")["trainer"]["global_step"] == 2


def test_resume_with_more_epochs_continues_a_finished_run(recipe, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(recipe, overrides=["train.epochs=3"], out=a)
    train(recipe, overrides=["train.epochs=2"], out=b)
    s = train(None, overrides=["train.epochs=3"], resume=b)
    assert not s["interrupted"] and s["epochs"] == 3
    assert_identical(a, b)


def test_resume_after_a_crash_from_a_periodic_checkpoint(recipe, tmp_path, monkeypatch):
    """A run killed right after a ``save_every`` checkpoint continues exactly from it."""
    from elman.train.trainer import Trainer

    overrides = ["train.save_every=7", "train.log_every=5", *DROPOUT]
    straight = tmp_path / "straight"
    train(recipe, overrides=overrides, out=straight)
    real_save = Trainer.save

    def save_then_crash(self, name):
        path = real_save(self, name)
        if self.global_step == 28:  # mid-epoch 2, between two log windows
            raise KeyboardInterrupt
        return path

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(Trainer, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, overrides=overrides, out=crashed)
    monkeypatch.setattr(Trainer, "save", real_save)
    assert load_checkpoint(crashed / "last.pt")["trainer"]["global_step"] == 28
    train(None, resume=crashed)
    assert_identical(straight, crashed)
    # the epoch's training loss counts every token once, across the crash
    a = load_checkpoint(straight / "last.pt")["trainer"]["history"]
    b = load_checkpoint(crashed / "last.pt")["trainer"]["history"]
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-9)


def test_resume_may_change_train_keys_only(recipe, tmp_path):
    from elman.errors import ElmanError

    run_dir = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=3"], out=run_dir)
    for override in ("data.bptt=3", "data.batch_size=8", "model.hidden_size=4", "model.cell=gru"):
        with pytest.raises(ElmanError, match=f"--set changes {override.split('=')[0]}"):
            train(None, overrides=[override], resume=run_dir)
    s = train(None, overrides=["train.max_steps=4", "data.eval_batch_size=3"], resume=run_dir)
    assert s["global_step"] == 4
