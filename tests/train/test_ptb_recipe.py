"""The ptb-small-lstm recipe on the real Penn Treebank, shrunk to seconds (needs ELMAN_DATA)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from elman.cli import main
from elman.train.checkpoint import load_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "ptb-small-lstm.toml"


@pytest.mark.data
def test_ptb_small_lstm_runs_and_checkpoints(tmp_path, capsys):
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ELMAN_DATA does not hold ptb/ptb.train.txt")
    out = tmp_path / "run"
    tiny = [
        "model.embedding_dim=16",
        "model.hidden_size=16",
        "model.num_layers=1",
        "train.max_steps=20",
        "train.save_every=10",
        "train.log_every=10",
        "train.device=cpu",
        "train.threads=1",
        "train.progress=false",
    ]
    argv = ["train", str(RECIPE), "--out", str(out)]
    for override in tiny:
        argv += ["--set", override]
    assert main(argv) == 0
    assert "stopped after step 20" in capsys.readouterr().out
    ck = load_checkpoint(out / "last.pt")
    assert ck["trainer"]["global_step"] == 20 and ck["trainer"]["epoch"] == 1
    assert len(ck["vocab"]["itos"]) == 10000  # Mikolov's PTB: 10k words, <unk> and <eos> included
    assert ck["model"]["decoder.weight"].shape == (10000, 16)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    assert all(math.isfinite(r["loss"]) for r in records)
