"""benchmarks/time_to_quality.py (not a package, imported by path) stops an elman run at the
target, even when started from a background job, and tests that epoch's model."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

from elman.tasks.evaluation import evaluate
from train.lmtoy import write_recipe

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("ttq", ROOT / "benchmarks/time_to_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ttq"] = module
    spec.loader.exec_module(module)
    return module


def test_a_run_is_stopped_at_the_target_even_with_sigint_ignored(tmp_path, corpus, monkeypatch):
    """Regression: the benchmark stopped runs with SIGINT, which a background job's children
    ignore, so a run went on to its last epoch and its best.pt was tested."""
    ttq = load_benchmark()
    recipe = write_recipe(tmp_path / "tiny.toml", corpus)
    recipe.write_text(recipe.read_text().replace("epochs = 2", "epochs = 100000"))
    assert "epochs = 100000" in recipe.read_text()
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
    try:
        result = ttq.elman_run(str(recipe), tmp_path, target=1e9, threads=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [p["epoch"] for p in result["curve"]] == [1]
    run = tmp_path / recipe.stem
    epochs = len(ttq.valid_records(run))
    assert epochs < 100000  # stopped, not trained to the end
    want = evaluate(run / "epoch1.pt", "test", device="cpu").metrics["ppl"]
    assert result["test_ppl"] == pytest.approx(want, rel=1e-9)
