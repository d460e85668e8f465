"""Fixtures shared by every test folder: one torch thread, a tiny word corpus and recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train.lmtoy import write_corpus, write_recipe


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models run fastest on one thread, and runs compared bit for bit must not change
    # their thread count between them.
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
