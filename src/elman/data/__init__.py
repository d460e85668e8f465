"""elman.data: corpora, vocabularies and BPTT batches.

- :mod:`elman.data.datasets`: named corpora under ``$ELMAN_DATA`` (sha256-checked) or a
  directory of train/valid/test.txt, and the token convention behind every perplexity.
- :mod:`elman.data.text`: strict UTF-8 reading with one-line errors.
- :mod:`elman.data.specials`: the special tokens ``<unk>`` and ``<eos>``.
- :mod:`elman.data.vocabulary`: token <-> id, built from the training split only.
- :mod:`elman.data.batching`: BPTT chunks that score every token exactly once.

The names below are re-exported lazily: ``from elman.data import resolve`` imports only
:mod:`elman.data.datasets`, so the torch-free paths (``elman ngram``, ``elman data``)
never load torch, which only :mod:`~elman.data.vocabulary` and
:mod:`~elman.data.batching` need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elman.data.batching import IGNORE_INDEX, Batch, BPTTStream
    from elman.data.datasets import DATASETS, SPLITS, Dataset, DatasetSpec, data_root, resolve
    from elman.data.specials import EOS, UNK
    from elman.data.text import read_lines, read_text
    from elman.data.vocabulary import Vocabulary

# name -> the module that defines it
_EXPORTS = {
    "DATASETS": "datasets",
    "SPLITS": "datasets",
    "Dataset": "datasets",
    "DatasetSpec": "datasets",
    "data_root": "datasets",
    "resolve": "datasets",
    "EOS": "specials",
    "UNK": "specials",
    "read_lines": "text",
    "read_text": "text",
    "Vocabulary": "vocabulary",
    "IGNORE_INDEX": "batching",
    "Batch": "batching",
    "BPTTStream": "batching",
}

__all__ = [  # the keys of _EXPORTS (tests/data/test_package.py checks)
    "DATASETS",
    "EOS",
    "IGNORE_INDEX",
    "SPLITS",
    "UNK",
    "BPTTStream",
    "Batch",
    "Dataset",
    "DatasetSpec",
    "Vocabulary",
    "data_root",
    "read_lines",
    "read_text",
    "resolve",
]


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'elman.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"elman.data.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
