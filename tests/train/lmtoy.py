"""A tiny word corpus and a tiny LM recipe, shared by the train, inference and cli tests.

Everything is CPU, one thread, a few hundred tokens: a whole training run takes well under a
second, so tests can afford to train, interrupt and resume.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = "the cat sat on a mat dog ran to big red house".split()


def corpus_lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def write_corpus(folder: Path) -> Path:
    """``folder`` with train.txt (60 lines), valid.txt (10) and test.txt (12)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, seed, n in (("train", 1, 60), ("valid", 2, 10), ("test", 3, 12)):
        (folder / f"{split}.txt").write_text("\n".join(corpus_lines(seed, n)) + "\n")
    return folder


def num_tokens(path: Path) -> int:
    """Tokens of a word-level split under elman's convention: the words, and <eos> per line."""
    return sum(len(line.split()) + 1 for line in path.read_text().splitlines())


RECIPE = """\
[recipe]
name = "tiny"
task = "lm"
aim = "a test"

[data]
dataset = "{corpus}"
batch_size = 4
bptt = 5
eval_batch_size = 2

[model]
cell = "lstm"
embedding_dim = 8
hidden_size = 8
num_layers = 2

[train]
epochs = 2
lr = 1.0
clip_norm = 0.5
device = "cpu"
threads = 1
progress = false
log_every = 7
"""


def write_recipe(path: Path, corpus: Path, extra: str = "") -> Path:
    """The tiny recipe reading ``corpus``; ``extra`` is appended (more sections)."""
    path.write_text(RECIPE.format(corpus=corpus.as_posix()) + extra)
    return path


# A tiny NPLM over the same corpus (tests of scoring, fine-tuning, checkpoints).
NPLM_RECIPE = """\
[recipe]
name = "tiny-nplm"
task = "nplm"
aim = "a test"

[data]
dataset = "{corpus}"
batch_size = 16
eval_batch_size = 7

[model]
context_size = 3
embedding_dim = 6
hidden_size = 8

[train]
epochs = 1
optimizer = "adam"
lr = 0.01
device = "cpu"
threads = 1
progress = false
"""
