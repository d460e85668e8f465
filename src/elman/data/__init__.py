"""elman.data: corpora, vocabularies and BPTT batches.

- :mod:`elman.data.datasets`: named corpora under ``$ELMAN_DATA`` (sha256-checked) or a
  directory of train/valid/test.txt, and the token convention behind every perplexity.
- :mod:`elman.data.text`: strict UTF-8 reading with one-line errors.
- :mod:`elman.data.vocabulary`: token <-> id, built from the training split only.
- :mod:`elman.data.batching`: BPTT chunks that score every token exactly once.
"""

from elman.data.batching import IGNORE_INDEX, Batch, BPTTStream
from elman.data.datasets import DATASETS, SPLITS, Dataset, DatasetSpec, data_root, resolve
from elman.data.text import read_lines, read_text
from elman.data.vocabulary import EOS, UNK, Vocabulary

__all__ = [
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
