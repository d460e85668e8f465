"""Fixtures for the cli tests: a tiny word corpus and a tiny recipe under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train.lmtoy import write_corpus, write_recipe


@pytest.fixture(autouse=True)
def _one_thread():
    # Runs compare weights bit for bit; the thread count must not change between them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def recipe(tmp_path: Path, corpus: Path) -> Path:
    return write_recipe(tmp_path / "tiny.toml", corpus)
