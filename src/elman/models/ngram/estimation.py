"""Building an n-gram model straight into its file, order by order, in a memory budget.

:meth:`NgramLM.build` holds every order's counts and then the whole model; at 100M words
that is gigabytes beside the corpus.  :func:`build_file` writes the same file without ever
holding the model, in the spirit of lmplz's pipeline:

1. the corpus is read into word ids with positions capped at the order (uint8), and counted
   in the budget (:func:`~elman.models.ngram.counts.count_ngrams` consuming it: the corpus
   goes once the highest order's keys are sorted);
2. the orders are smoothed from 1 up (:func:`~elman.models.ngram.smoothing.smooth`), each
   table let go once smoothed;
3. order n-1 is written as soon as order n gives its back-off weights.  Beside the order
   being smoothed only the context rows and words of the orders below stay, for the words
   of the ARPA lines (a binary file's keys are made from them a block at a time).

The file is the one :meth:`NgramLM.build` and :func:`~elman.models.ngram.write_arpa` (byte
for byte) or :func:`~elman.models.ngram.write_binary` (array for array) give:
``tests/models/test_ngram_estimation.py``.  Pruning needs every order's counts at once
(:func:`~elman.models.ngram.counts.prune_mask`), so a pruned model is built whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elman.files import atomic_open
from elman.models.ngram import arpa_lines, probing, threads
from elman.models.ngram.arpa import write_arpa, write_end, write_header, write_section
from elman.models.ngram.arpa_lines import DECIMALS, Vocabulary
from elman.models.ngram.binary import StreamedBinary, raw, vocab_bytes, write_binary
from elman.models.ngram.counts import build_vocab, count_ngrams, quiet
from elman.models.ngram.model import NgramConfig, NgramLM
from elman.models.ngram.smoothing import Smoothed, smooth

KEY_BLOCK = 1 << 20  # binary keys made at a time


@dataclass
class Built:
    """What :func:`build_file` wrote: the vocabulary's size, the number of n-grams of each
    order and the discounts of each order (as :meth:`NgramLM.build` finds them)."""

    vocab_size: int
    counts: list[int]
    discounts: list[tuple[float, ...]]


def build_file(
    lines: Iterable[str],
    config: NgramConfig,
    out: str | Path,
    *,
    binary: bool = False,
    decimals: int | None = DECIMALS,
    memory: int | None = None,
    temp_dir: str | Path | None = None,
    phase: Callable[[str], None] = quiet,
) -> Built:
    """Count ``lines`` (one sentence each), smooth them as ``config`` says and write the model
    to ``out`` atomically: elman's binary format with ``binary``, else ARPA with ``decimals``
    digits after the point (None: exact).  ``memory`` bytes bound the counting, which spills
    to ``temp_dir`` beyond them (:mod:`elman.models.ngram.spill`); ``phase`` is told each
    step."""
    if config.prunes:
        lm = NgramLM.build(lines, config, phase, memory, temp_dir)
        if binary:
            write_binary(lm, out)
        else:
            write_arpa(lm, out, phase, decimals)
        return Built(lm.vocab_size, lm.counts(), lm.discounts)
    phase("building the vocabulary")
    vocab, enc = build_vocab(lines, cap=config.order)
    tables = count_ngrams(enc, config.order, len(vocab), phase, memory, temp_dir, consume=True)
    del enc
    counts = [len(t) for t in tables]
    orders = smooth(tables, method=config.smoothing, k=config.k, vocab_size=len(vocab),
                    phase=phase, consume=True)  # fmt: skip
    if binary:
        discounts = _write_binary(out, vocab, counts, orders, temp_dir)
    else:
        discounts = _write_arpa(out, vocab, counts, orders, phase, decimals)
    return Built(len(vocab), counts, discounts)


def _with_backoffs(orders: Iterator[Smoothed]) -> Iterator[tuple[Smoothed, np.ndarray | None]]:
    """Each order with its back-off weights, which come with the order above (None at the
    highest order)."""
    previous = next(orders)
    for order in orders:
        yield previous, order.logbo
        previous = order
    yield previous, None


def _write_arpa(
    out: str | Path,
    vocab: list[str],
    counts: list[int],
    orders: Iterator[Smoothed],
    phase: Callable[[str], None],
    decimals: int | None,
) -> list[tuple[float, ...]]:
    table = None if decimals is None else Vocabulary(vocab)
    below: list[tuple[np.ndarray, np.ndarray]] = []  # (context, word) of each order written
    discounts = []
    # Each section is written by a thread of its own while the orders above are smoothed; the
    # next section waits for it, so the sections stay in order. Nothing runs beside the
    # highest order's smoothing, the build's peak of memory: at 100M words in 2 GB, writing the
    # 3-grams beside it took the peak from 1,883 to 2,082 MB.
    with atomic_open(out, "wb") as f, ThreadPoolExecutor(1, "elman-arpa") as writer:
        write_header(f, counts)
        writing: Future[None] | None = None
        for order, logbo in _with_backoffs(orders):
            below.append((order.context, order.word))
            discounts.append(order.discounts)
            values = [order.logp] if logbo is None else [order.logp, logbo]
            fixed = table is not None and all(arpa_lines.writable(v) for v in values)
            words: list[str] | Vocabulary = table if fixed and table is not None else vocab
            if writing is not None:
                writing.result()
            threads.trim()  # what the last order's smoothing and writing freed
            writing = writer.submit(write_section, f, order.n, words, _words(below), order.logp,
                                    logbo, phase, decimals if fixed else None)  # fmt: skip
            if order.n + 2 == len(counts):  # the highest order is smoothed next
                writing.result()
                threads.trim()
            del order, logbo, values
        if writing is not None:
            writing.result()
        write_end(f)
    return discounts


def _words(below: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[np.ndarray], np.ndarray]:
    """The word ids (len(rows), n) of rows of the highest order in ``below``, found by
    following each row's context down the orders."""
    n = len(below)

    def words(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), n), dtype=np.int64)
        for m in range(n, 1, -1):
            context, word = below[m - 1]
            out[:, m - 1] = word[rows]
            rows = context[rows]
        out[:, 0] = rows  # a unigram's row is its word
        return out

    return words


def _write_binary(
    out: str | Path,
    vocab: list[str],
    counts: list[int],
    orders: Iterator[Smoothed],
    temp_dir: str | Path | None,
) -> list[tuple[float, ...]]:
    V, discounts = len(vocab), []
    writer = StreamedBinary(out, temp_dir)
    try:
        writer.payload.add("vocab", [vocab_bytes(vocab)])
        for order, logbo in _with_backoffs(orders):
            n = order.n
            discounts.append(order.discounts)
            if n > 1:
                writer.payload.add(f"keys{n}", (raw(k, "keys") for k in _keys(order, V)))
                index = probing.build_from(_keys(order, V), len(order.word))
                if index is not None:
                    writer.payload.add(f"index{n}", [raw(index, "index")])
                del index
            writer.payload.add(f"logp{n}", [raw(order.logp, "logp")])
            if logbo is not None:
                writer.payload.add(f"logbo{n}", [raw(logbo, "logbo")])
            del order, logbo
            threads.trim()
        writer.finish(len(counts), V, counts, discounts)
    finally:
        writer.close()
    return discounts


def _keys(order: Smoothed, V: int) -> Iterator[np.ndarray]:
    """The binary file's keys context_row * V + word, a block at a time."""
    for start in range(0, len(order.word), KEY_BLOCK):
        stop = start + KEY_BLOCK
        yield order.context[start:stop].astype(np.int64) * V + order.word[start:stop]
