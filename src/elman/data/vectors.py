"""Pretrained word vectors in the text format of word2vec, fastText (``.vec``) and GloVe.

One word per line followed by its D numbers, separated by spaces; word2vec and fastText files
start with a header line ``N D`` (GloVe files have none). Files written by word2vec tools list
the words by decreasing frequency, so ``limit`` keeps the most frequent ones::

    3 4
    the 0.418 0.24968 -0.41242 0.1217
    , 0.013441 0.23682 -0.16899 0.40951
    . 0.15164 0.30177 -0.16763 0.17684

:func:`train_vectors` learns such a file from a corpus with gensim's word2vec (skip-gram with
negative sampling, Mikolov et al. 2013); gensim is an optional dependency, imported only there.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elman.errors import ElmanError
from elman.files import atomic_open
from elman.progress import Progress


def read_vectors(path: str | Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """The words of a vectors file and their vectors, shape (N, D) float32, file order kept.

    Args:
        path: a word2vec/fastText/GloVe text file.
        limit: read at most this many words (the first ones: the most frequent in word2vec
            files). None reads all.

    A word that occurs twice keeps its first vector. A missing file, bad UTF-8 or a line
    with the wrong number of values is an ElmanError naming the file (and line).
    """
    path = Path(path)
    if not path.is_file():
        raise ElmanError(
            f"{path}: vectors file not found; train one with "
            f"`elman vectors --data wikitext-2 --out {path}` or give a word2vec/GloVe text file"
        )
    words: list[str] = []
    seen: set[str] = set()
    rows: list[np.ndarray] = []
    dim: int | None = None
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if limit is not None and len(words) >= limit:
                    break
                fields = line.rstrip("\n").rstrip(" ").split(" ")
                if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                    dim = int(fields[1])  # word2vec/fastText header "N D"
                    continue
                if fields == [""]:
                    continue
                if dim is None:
                    dim = len(fields) - 1
                if len(fields) != dim + 1 or dim < 1:
                    raise ElmanError(
                        f"{path}:{number}: expected a word and {dim} numbers, "
                        f"found {len(fields)} fields"
                    )
                try:
                    vector = np.asarray(fields[1:], dtype=np.float32)
                except ValueError:
                    raise ElmanError(f"{path}:{number}: a value is not a number") from None
                if fields[0] not in seen:
                    seen.add(fields[0])
                    words.append(fields[0])
                    rows.append(vector)
    except UnicodeDecodeError as err:
        raise ElmanError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not words:
        raise ElmanError(f"{path}: no vectors in the file")
    return words, np.stack(rows)


def write_vectors(path: str | Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """Write ``words`` and ``vectors`` (N, D) in the word2vec text format (with its header)."""
    with atomic_open(path) as f:  # temporary file, fsync, rename: never a torn file
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors, strict=True):
            f.write(word + " " + " ".join(f"{x:.6g}" for x in row.tolist()) + "\n")


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class EpochsDone:
    """What gensim's word2vec tells its callbacks, moving a progress: the vocabulary is built,
    then each epoch ends (gensim calls these four; its per-batch hooks it never calls)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_train_begin(self, model: Any) -> None:
        self.progress.phase("skip-gram")

    def on_epoch_begin(self, model: Any) -> None:
        pass

    def on_epoch_end(self, model: Any) -> None:
        self.progress.update()

    def on_train_end(self, model: Any) -> None:
        pass


def train_vectors(
    sentences: Iterable[Sequence[str]],
    dim: int = 100,
    window: int = 2,
    min_count: int = 2,
    epochs: int = 5,
    seed: int = 1,
    threads: int = 1,
) -> tuple[list[str], np.ndarray]:
    """Skip-gram word2vec vectors of ``sentences`` (words by decreasing frequency).

    A small ``window`` (2) makes the neighbours syntactic rather than topical, which is what a
    part-of-speech tagger wants (Bansal et al. 2014).
    """
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise ElmanError(
            "training word vectors needs gensim: pip install 'elman[vectors]' (or gensim)"
        ) from None
    corpus = [list(s) for s in sentences if len(s)]
    if not corpus:
        raise ElmanError("no sentences to train word vectors on")
    with Progress("training word vectors", epochs, unit="epochs") as progress:
        progress.phase("building the vocabulary")
        model = Word2Vec(
            corpus,
            vector_size=dim,
            window=window,
            min_count=min_count,
            sg=1,
            negative=5,
            epochs=epochs,
            seed=seed,
            workers=threads,
            hashfxn=_stable_hash,  # Python's str hash changes per process: seeds would not repeat
            callbacks=[EpochsDone(progress)],
        )
    words = list(model.wv.index_to_key)
    return words, np.asarray(model.wv.vectors, dtype=np.float32)


def lookup(
    itos: Sequence[str], words: Sequence[str], vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pretrained vector of each vocabulary entry: rows (V, D) and a found mask (V,).

    An entry is found under its own form or, failing that, lowercased (vectors trained on
    cased text still cover "The" and "the"; lowercased files cover both).
    """
    index = {w: i for i, w in enumerate(words)}
    rows = np.zeros((len(itos), vectors.shape[1]), dtype=np.float32)
    found = np.zeros(len(itos), dtype=bool)
    for i, token in enumerate(itos):
        j = index.get(token, index.get(token.lower()))
        if j is not None:
            rows[i], found[i] = vectors[j], True
    return rows, found
