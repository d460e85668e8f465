"""Tiny models trained once per test module, for the export tests (a second or two each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.tasks.training import train
from train.lmtoy import write_corpus, write_recipe
from train.mttoy import write_parallel_corpus, write_translation_recipe
from train.tagtoy import write_tagged_corpus, write_tagger_recipe

QUIET = ["train.epochs=1"]


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory) -> dict[str, Path]:
    """An LSTM LM (fused kernel) and a GRU LM (the lecture's GRU: the unrolled cell)."""
    root = tmp_path_factory.mktemp("lm")
    corpus = write_corpus(root / "corpus")
    recipe = write_recipe(root / "tiny.toml", corpus)
    for cell in ("lstm", "gru"):
        train(recipe, out=root / cell, overrides=[*QUIET, f"model.cell={cell}"])
    return {"lstm": root / "lstm", "gru": root / "gru", "corpus": corpus}


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tagger")
    recipe = write_tagger_recipe(root / "t.toml", write_tagged_corpus(root / "toy"))
    train(recipe, out=root / "run", overrides=["train.epochs=3"])
    return root / "run"


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("translation")
    corpus = write_parallel_corpus(root / "toy")
    recipe = write_translation_recipe(root / "attention.toml", corpus)
    train(recipe, out=root / "run", overrides=["train.epochs=4"])
    return root / "run"
