"""A tiny tagged corpus in the UD layout and a tiny tagger recipe (train, models and cli tests).

Sentences follow DET (ADJ) NOUN VERB (ADP DET NOUN) PUNCT, so the tags are learnable from the
words and their order; some sentences hold a multi-word token (``cannot`` = ``can`` + ``not``)
and an empty node, as UD allows. A whole training run takes a second or two.
"""

from __future__ import annotations

import random
from pathlib import Path

LEXICON = {
    "DET": ["the", "a", "every"],
    "ADJ": ["big", "red", "old"],
    "NOUN": ["cat", "dog", "house", "mat"],
    "VERB": ["sat", "ran", "slept"],
    "ADP": ["on", "to", "in"],
    "PUNCT": ["."],
}


def node(i: str, form: str, upos: str, xpos: str = "_", misc: str = "_") -> str:
    return "\t".join([i, form, form.lower(), upos, xpos, "_", "0", "dep", "_", misc])


def sentence_block(rng: random.Random, k: int) -> str:
    """One CoNLL-U sentence (comments, nodes, closing blank line)."""
    words: list[tuple[str, str]] = [(rng.choice(LEXICON["DET"]), "DET")]
    if rng.random() < 0.5:
        words.append((rng.choice(LEXICON["ADJ"]), "ADJ"))
    words.append((rng.choice(LEXICON["NOUN"]), "NOUN"))
    mwt = rng.random() < 0.2
    if mwt:
        words += [("can", "AUX"), ("not", "PART")]
    words.append((rng.choice(LEXICON["VERB"]), "VERB"))
    if rng.random() < 0.5:
        words += [(rng.choice(LEXICON["ADP"]), "ADP"), ("the", "DET")]
        words.append((rng.choice(LEXICON["NOUN"]), "NOUN"))
    words.append((".", "PUNCT"))
    lines = [f"# sent_id = s{k}", "# text = " + " ".join(w for w, _ in words)]
    for i, (form, tag) in enumerate(words, start=1):
        if mwt and form == "can":
            lines.append(node(f"{i}-{i + 1}", "cannot", "_"))
        lines.append(node(str(i), form, tag, xpos=tag.lower()))
        if i == 2 and k % 3 == 0:
            lines.append(node(f"{i}.1", "is", "AUX"))  # an empty node (enhanced graphs)
    return "\n".join(lines) + "\n\n"


def write_tagged_corpus(folder: Path, sizes: tuple[int, int, int] = (40, 10, 10)) -> Path:
    """``folder`` holding toy-train.conllu, toy-dev.conllu and toy-test.conllu."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, seed, n in zip(("train", "dev", "test"), (1, 2, 3), sizes, strict=True):
        rng = random.Random(seed)
        text = "".join(sentence_block(rng, k) for k in range(n))
        (folder / f"toy-{role}.conllu").write_text(text, encoding="utf-8")
    return folder


RECIPE = """\
[recipe]
name = "tiny-tagger"
task = "tagger"
aim = "a test"

[data]
dataset = "{corpus}"
batch_size = 8
eval_batch_size = 4

[model]
cell = "lstm"
embedding_dim = 16
char_embedding_dim = 8
char_hidden_size = 8
hidden_size = 16
num_layers = 2
dropout_embedding = 0.0
dropout_hidden = 0.0
dropout_output = 0.0

[train]
epochs = 2
optimizer = "adam"
lr = 0.01
schedule = "constant"
seed = 1
device = "cpu"
threads = 1
progress = false
log_every = 1000
"""


def write_tagger_recipe(path: Path, corpus: Path, extra: str = "") -> Path:
    path.write_text(RECIPE.format(corpus=corpus) + extra)
    return path
