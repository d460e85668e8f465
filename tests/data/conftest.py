"""Fixtures for the data tests: the real corpora (skipped when absent) and fake named datasets."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from elman.data import datasets
from elman.data.datasets import DatasetSpec, FileSpec


@pytest.fixture
def real_root() -> Path:
    """ELMAN_DATA, or skip: tests marked `data` need the real corpora."""
    root = os.environ.get("ELMAN_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("ELMAN_DATA is not set to a folder holding the corpora")
    return Path(root)


def need(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        if not (root / rel).is_file():
            pytest.skip(f"{root / rel} is absent")


def spec_for(root: Path, name: str, contents: dict[str, bytes], **kw) -> DatasetSpec:
    """A DatasetSpec whose files are written under ``root`` with the right sha256."""
    files = {}
    for role, data in contents.items():
        rel = f"{name}/{role}.txt"
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        url = f"https://example.org/{rel}"
        files[role] = FileSpec(rel, len(data), hashlib.sha256(data).hexdigest(), url)
    kw.setdefault("splits", {s: s for s in datasets.SPLITS})
    return DatasetSpec(
        name=name,
        task=kw.pop("task", "lm"),
        level=kw.pop("level", "word"),
        tokenizer=kw.pop("tokenizer", "whitespace"),
        description="a test corpus",
        origin="tests",
        files=files,
        **kw,
    )


@pytest.fixture
def fake_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Replace DATASETS by tiny specs under tmp_path; returns (root, table)."""
    root = tmp_path / "root"
    table = {
        "toy": spec_for(
            root, "toy", {"train": b"a b c\nb c\n", "valid": b"a c\n", "test": b"\nc d\n"}
        ),
        "toychar": spec_for(
            root,
            "toychar",
            {"input": b"0123456789" * 10},
            level="char",
            tokenizer="characters",
            splits={s: "input" for s in datasets.SPLITS},
            fractions=(0.9, 0.05, 0.05),
        ),
        "toypar": spec_for(root, "toypar", {"train.de": b"x\n"}, task="translation", splits={}),
    }
    monkeypatch.setattr(datasets, "DATASETS", table)
    monkeypatch.setenv("ELMAN_DATA", str(root))
    return root, table
