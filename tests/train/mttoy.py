"""A tiny parallel corpus and recipe: translate a digit string into its reverse.

``train.de`` holds lines like ``3 1 4 1`` and ``train.en`` the same digits reversed, ``1 4 1 3``:
every output piece depends on one source position, far from its own, so only a model that
attends (or memorises the whole source) gets it right. A training run takes a few seconds.
"""

from __future__ import annotations

import random
from pathlib import Path


def digit_pairs(n: int, seed: int, lengths: tuple[int, int] = (2, 6)) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        digits = [str(rng.randrange(10)) for _ in range(rng.randint(*lengths))]
        pairs.append((" ".join(digits), " ".join(reversed(digits))))
    return pairs


def write_parallel_corpus(
    folder: Path, sizes: tuple[int, int, int] = (600, 40, 40), src: str = "de", tgt: str = "en"
) -> Path:
    """``folder`` holding train/valid/test.{src,tgt}."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, seed, n in zip(("train", "valid", "test"), (1, 2, 3), sizes, strict=True):
        pairs = digit_pairs(n, seed)
        (folder / f"{split}.{src}").write_text("".join(s + "\n" for s, _ in pairs))
        (folder / f"{split}.{tgt}").write_text("".join(t + "\n" for _, t in pairs))
    return folder


RECIPE = """\
[recipe]
name = "tiny-translation"
task = "translation"
aim = "a test"

[data]
dataset = "{corpus}"
direction = "de-en"
vocab_size = 40
max_tokens = 400
eval_batch_size = 16

[model]
kind = "{kind}"
cell = "gru"
cell_options = {{ variant = "cudnn" }}
embedding_dim = 16
hidden_size = 32
dropout_embedding = 0.0
dropout_hidden = 0.0
dropout_output = 0.0

[decode]
beam = 3
max_len_ratio = 1.5
max_len_extra = 3

[train]
epochs = 2
optimizer = "adam"
lr = 0.01
schedule = "constant"
clip_norm = 5.0
seed = 1
device = "cpu"
threads = 1
progress = false
log_every = 1000
"""


def write_translation_recipe(
    path: Path, corpus: Path, kind: str = "attention", extra: str = ""
) -> Path:
    path.write_text(RECIPE.format(corpus=corpus, kind=kind) + extra)
    return path
