"""Tiny trained checkpoints of every task, made once per test session and only when asked for.

The checkpoints come from benchmarks/faults_checkpoint.py (:mod:`faults.bench`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faults.bench import benchmark


class _Checkpoints(dict):
    """task -> the ``last.pt`` of a tiny model trained for 3 steps, trained on first use."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def __missing__(self, task: str) -> Path:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self[task] = benchmark.tiny_checkpoint(task, self.folder / task)
        finally:
            torch.set_num_threads(threads)
        return self[task]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> _Checkpoints:
    return _Checkpoints(tmp_path_factory.mktemp("checkpoints"))
