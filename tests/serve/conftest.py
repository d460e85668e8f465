"""Fixtures of the serve tests: one tiny trained model of each kind ``elman serve`` holds.

Every model is trained once per session on the toy corpora of tests/train (a few seconds in
all): a word LSTM LM and a trigram ARPA model of the same corpus, a tagger and an attention
translation model (digit strings reversed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.cli import main
from elman.tasks.training import train
from train.lmtoy import write_corpus, write_recipe
from train.mttoy import write_parallel_corpus, write_translation_recipe
from train.tagtoy import write_tagged_corpus, write_tagger_recipe


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: path}``: kn3 (ARPA), lstm (an LM run), upos (a tagger run), de-en (translation)."""
    root = tmp_path_factory.mktemp("serve-models")
    corpus = write_corpus(root / "corpus")
    arpa = root / "kn3.arpa"
    build = ["ngram", "build", "--order", "3", "--data", str(corpus / "train.txt")]
    assert main([*build, "--out", str(arpa)]) == 0
    train(write_recipe(root / "lm.toml", corpus), out=root / "lstm")
    tagged = write_tagged_corpus(root / "tagged")
    train(write_tagger_recipe(root / "tagger.toml", tagged), out=root / "upos")
    parallel = write_parallel_corpus(root / "parallel", sizes=(800, 20, 20))
    overrides = ["train.epochs=6", "model.hidden_size=64"]  # 2 s; learns to reverse, mostly
    train(
        write_translation_recipe(root / "tr.toml", parallel),
        out=root / "de-en",
        overrides=overrides,
    )
    return {"kn3": arpa, "lstm": root / "lstm", "upos": root / "upos", "de-en": root / "de-en"}
