"""A tiny trained language model for the evaluation methods' tests (cache, dynamic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.cli import main


@pytest.fixture
def lm_run(tmp_path: Path, recipe: Path) -> Path:
    """A word-level LSTM trained for two epochs on the toy corpus (tests/conftest.py)."""
    run = tmp_path / "lm-run"
    assert main(["train", str(recipe), "--out", str(run), "--set", "train.progress=false"]) == 0
    return run
