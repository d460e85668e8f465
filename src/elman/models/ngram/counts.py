"""Turning sentences into word ids and counting every n-gram of orders 1..N.

Sentence convention (KenLM and SRILM): each line is one sentence, read as

    <s> w_1 w_2 ... w_k </s>

``<s>`` is context only (never predicted, never counted as a unigram), ``</s>`` is
predicted and counted like a word, and no n-gram crosses a line.  ``<unk>`` in the
text is an ordinary word.

Data layout.  The corpus becomes one flat id array with each token's position in
its sentence (``<s>`` at position 0)::

    lines   "a b"            "b"
    ids     <s> a  b  </s>   <s> b  </s>
    pos     0   1  2  3      0   1  2

The n-gram of order n ending at token t is (ids[t-n+1], ..., ids[t]); it exists when
pos[t] >= n - 1 (it starts at or after its sentence's <s>).  An n-gram is stored as
an integer key

    key = context_index * V + word

where context_index is the row of its first n-1 words in the (sorted) table of order
n-1 and V the vocabulary size.  Sorting the keys puts all n-grams sharing a context
next to each other, so per-context sums are one ``np.bincount``.  Unigram rows are
the word ids themselves (row w = word w, for every word of the vocabulary).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram.spill import INDEX, Run, Tokens, chunk_tokens, count_order

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
# Every vocabulary built here starts with these three ids.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPLIT_BLOCK = 1 << 20  # keys split into (context, word) at a time


@dataclass
class Encoded:
    """A corpus as word ids.

    Attributes:
        ids: shape (T,), word id of every token, ``<s>`` and ``</s>`` included (int32 when
            read from text).
        pos: shape (T,), position of each token in its sentence (``<s>`` is 0; int32 too).
        oov: shape (T,), True for a word that was not in the vocabulary (mapped to <unk>).
        sentences: number of lines.
    """

    ids: np.ndarray
    pos: np.ndarray
    oov: np.ndarray
    sentences: int

    @property
    def predicted(self) -> np.ndarray:
        """Mask of the tokens a model predicts: every word and ``</s>``, not ``<s>``."""
        return self.pos > 0


def _words(lines: Iterable[str], lengths: list[int]) -> Iterator[str]:
    """Every word of every line, in order, appending each line's word count to ``lengths``.

    Callers stream these into an id array (``np.fromiter``): no list of all the words, a
    Python string each, is ever held."""
    for line in lines:
        toks = line.split()
        lengths.append(len(toks))
        yield from toks


def _drop_markers(word_ids: np.ndarray, lengths: np.ndarray, bos: int, eos: int):
    """Remove literal <s> and </s> from the text (KenLM's --skip_symbols): each line
    already implies them."""
    marker = (word_ids == bos) | (word_ids == eos)
    if not marker.any():
        return word_ids, lengths
    sentence_of_word = np.repeat(np.arange(len(lengths)), lengths)  # (W,)
    lengths = np.bincount(sentence_of_word[~marker], minlength=len(lengths)).astype(np.int64)
    return word_ids[~marker], lengths


def _frame(word_ids: np.ndarray, lengths: np.ndarray, bos: int, eos: int) -> tuple:
    """Insert <s> before and </s> after every sentence; return (ids, pos, is_word), int32
    ids and positions (``INDEX``) and the mask of the text's own words.

    No temporary per-token int64 array: at 100M words the sentence index of each word, its
    slot and the positions' aranges held some 4 GB beside the result."""
    sizes = lengths + 2  # (S,)  <s> + words + </s>
    total = int(sizes.sum())
    ends = np.cumsum(sizes) - 1  # (S,)  index of each </s>
    starts = ends - (sizes - 1)  # (S,)  index of each <s>
    is_word = np.ones(total, dtype=bool)
    is_word[starts] = False
    is_word[ends] = False
    ids = np.empty(total, dtype=INDEX)
    ids[is_word] = word_ids
    ids[starts] = bos
    ids[ends] = eos
    pos = np.ones(total, dtype=INDEX)  # the step from the previous token's position ...
    pos[starts[1:]] = 1 - sizes[:-1]  # ... back to 0 at each <s>
    if total:
        pos[0] = 0
    np.cumsum(pos, out=pos)
    return ids, pos, is_word


def build_vocab(lines: Iterable[str], cap: int | None = None) -> tuple[list[str], Encoded]:
    """The vocabulary of ``lines`` (<unk>, <s>, </s>, then words in order of first
    appearance) and the lines encoded with it.  Raises ElmanError for an empty corpus.

    With ``cap`` (at most 255) the positions are capped at it and held as uint8, a quarter of
    the memory: counting up to order ``cap`` only asks whether a position is >= n-1 or
    = n-1 for n <= ``cap``, which the capped positions answer alike.  The ids are then held
    as uint16 when the vocabulary fits (half the memory)."""
    # A new word gets the next id as it is first looked up: first-appearance order.
    index: defaultdict[str, int] = defaultdict(lambda: len(index))
    index.update({UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID})
    counts: list[int] = []
    word_ids = np.fromiter(map(index.__getitem__, _words(lines, counts)), dtype=INDEX)
    sentences, lengths = len(counts), np.asarray(counts, dtype=np.int64)
    word_ids, lengths = _drop_markers(word_ids, lengths, BOS_ID, EOS_ID)
    if not len(word_ids):
        raise ElmanError(
            f"the training corpus has no words ({sentences} lines, all blank); "
            "an n-gram model needs at least one line of text"
        )
    ids, pos, _ = _frame(word_ids, lengths, BOS_ID, EOS_ID)
    del word_ids
    if cap is not None:
        pos = np.minimum(pos, cap, out=pos).astype(np.uint8)
        if len(index) <= 1 << 16:
            ids = ids.astype(np.uint16)
    oov = np.zeros(len(ids), dtype=bool)  # calloc'd: no memory until written
    return list(index), Encoded(ids, pos, oov, sentences)


def encode(lines: Iterable[str], index: dict[str, int]) -> Encoded:
    """Encode ``lines`` with a fixed vocabulary (which has <unk>, <s> and </s>); unknown
    words become <unk> and are flagged in ``Encoded.oov``."""
    counts: list[int] = []
    raw = np.fromiter(map(index.get, _words(lines, counts), repeat(-1)), dtype=INDEX)
    sentences, lengths = len(counts), np.asarray(counts, dtype=np.int64)
    bos, eos = index[BOS], index[EOS]
    raw, lengths = _drop_markers(raw, lengths, bos, eos)
    is_oov = raw < 0
    word_ids = np.where(is_oov, index[UNK], raw)
    ids, pos, is_word = _frame(word_ids, lengths, bos, eos)
    oov = np.zeros(len(ids), dtype=bool)
    oov[is_word] = is_oov
    return Encoded(ids, pos, oov, sentences)


@dataclass
class OrderCounts:
    """The distinct n-grams of one order n, sorted by key = context * V + word.

    Attributes (int32, see ``INDEX``; ``starts_bos`` bool):
        context: shape (M,), row of the first n-1 words in the order n-1 table
            (0 for unigrams: the empty context).
        word: shape (M,), the last word.
        count: shape (M,), raw count c(w_1..w_n) in the corpus.
        suffix: shape (M,), row of (w_2..w_n) in the order n-1 table (unigrams: 0).
        starts_bos: shape (M,), True when w_1 is <s>.
    """

    context: np.ndarray
    word: np.ndarray
    count: np.ndarray
    suffix: np.ndarray
    starts_bos: np.ndarray

    def __len__(self) -> int:
        return len(self.word)

    def nbytes(self) -> int:
        arrays = (self.context, self.word, self.count, self.suffix, self.starts_bos)
        return sum(a.nbytes for a in arrays)


def quiet(doing: str) -> None:
    """The default ``phase`` of the builders: no feedback (a caller passes
    :meth:`elman.progress.Progress.phase` to show where a long build is)."""


def count_ngrams(
    enc: Encoded,
    order: int,
    vocab_size: int,
    phase: Callable[[str], None] = quiet,
    memory: int | None = None,
    temp_dir: str | Path | None = None,
    consume: bool = False,
) -> list[OrderCounts]:
    """Count all n-grams of orders 1..``order`` in ``enc``; element n-1 is order n.

    The unigram table has one row per vocabulary word (count 0 for <s>, and for
    <unk> when the text has none).  Higher orders list the n-grams that occur.
    ``phase`` is told which order is being counted.  ``memory`` (bytes) bounds the sorting:
    the chunks sorted at a time take what it leaves beside the corpus and the tables already
    counted, and are spilled to ``temp_dir`` and merged (:mod:`elman.models.ngram.spill`),
    with the same result.  With ``consume`` the counting takes ``enc``'s arrays (``enc`` is
    left empty) and lets each go as soon as it is no longer read: a caller that builds a
    model from a corpus too large to hold twice passes its only reference this way.
    """
    ids, pos = enc.ids, enc.pos
    if len(ids) >= np.iinfo(INDEX).max:
        raise ElmanError(f"the corpus has {len(ids)} tokens; the n-gram counter holds < 2**31")
    V = vocab_size
    unigram_count = np.bincount(ids[pos > 0], minlength=V).astype(INDEX)
    words = np.arange(V, dtype=INDEX)
    zeros = np.zeros(V, dtype=INDEX)
    tables = [OrderCounts(zeros, words, unigram_count, zeros, words == BOS_ID)]
    # the row of the (n-1)-gram ending at each token: for n = 2 the word itself (only read)
    tokens = Tokens(ids, pos, ids)
    del ids, pos
    if consume:
        empty = np.zeros(0, dtype=INDEX)
        enc.ids, enc.pos, enc.oov = empty, empty, np.zeros(0, dtype=bool)
    T = len(tokens.ids)  # type: ignore[arg-type]
    for n in range(2, order + 1):
        phase(f"counting {n}-grams")
        last = n == order
        held = tokens.nbytes() + (0 if last else T * np.dtype(INDEX).itemsize)
        held += sum(t.nbytes() for t in tables)
        run = count_order(tokens, n, V, chunk_tokens(memory, held), temp_dir, last)
        tables.append(_table(run, V))
        del run
    return tables


def _table(run: Run, V: int) -> OrderCounts:
    """The :class:`OrderCounts` of a counted run: each key split into context row and word, a
    block at a time (whole-array int64 temporaries would double the table's memory)."""
    context = np.empty(len(run), dtype=INDEX)
    word = np.empty(len(run), dtype=INDEX)
    for start in range(0, len(run), SPLIT_BLOCK):
        stop = start + SPLIT_BLOCK
        context[start:stop], word[start:stop] = np.divmod(run.keys[start:stop], V)
    # the suffix (w_2..w_n) ends at the same token as the n-gram
    return OrderCounts(context, word, run.count, run.suffix, run.starts_bos)


def adjusted_count(table: OrderCounts, above: OrderCounts | None) -> np.ndarray:
    """Kneser-Ney counts a(.) of one order n as KenLM's lmplz computes them, given the
    table of order n+1 (``above``; None at the highest order N).

    Highest order N: a = c, the raw count.  Lower orders n < N:

        a(w_1..w_n) = N1+(. w_1..w_n) = |{v : c(v w_1..w_n) > 0}|

    the number of distinct words seen before the n-gram, except that an n-gram
    starting with <s> keeps its raw count (nothing can precede <s>), and the unigram
    <s> gets 0.
    """
    if above is None:
        return table.count  # not a copy: nothing writes to it
    a = np.bincount(above.suffix, minlength=len(table)).astype(INDEX)
    a[table.starts_bos] = table.count[table.starts_bos]
    return a


SPECIALS = (UNK_ID, BOS_ID, EOS_ID)  # never pruned


def prune_mask(
    tables: list[OrderCounts], thresholds: tuple[int, ...], allowed: np.ndarray | None = None
) -> list[np.ndarray]:
    """Which n-grams survive count pruning and a limited vocabulary (KenLM's ``lmplz --prune``
    and ``--limit_vocab_file``); element n-1 is a bool mask over the order-n table.

    An n-gram of order n is pruned when its raw count c(w_1..w_n) is at most
    ``thresholds[n-1]`` (the raw count at every order, not the adjusted count), or when one of
    its words is outside ``allowed`` (shape (V,), bool; None: every word allowed).  The
    unigrams <unk>, <s> and </s> are never pruned.  With non-decreasing thresholds the
    survivors are closed under prefixes and suffixes (each occurs at least as often as the
    n-grams that contain it), so every surviving n-gram's context and suffix survive; the
    masks enforce it all the same, so the tables stay consistent.
    """
    keep: list[np.ndarray] = []
    for n, t in enumerate(tables, start=1):
        k = t.count > thresholds[n - 1]
        if allowed is not None:
            k &= allowed[t.word]
        if n == 1:
            k[list(SPECIALS)] = True
        else:
            k &= keep[-1][t.context] & keep[-1][t.suffix]
        keep.append(k)
    return keep


def select(tables: list[OrderCounts], keep: list[np.ndarray]) -> list[OrderCounts]:
    """The tables restricted to the rows ``keep`` marks, renumbered: words get new ids in
    their old order (the kept unigrams), rows their rank among the kept rows, so the keys
    ``context * V + word`` stay sorted.  The specials keep their ids 0, 1, 2."""
    new_word = (np.cumsum(keep[0]) - 1).astype(INDEX)  # (V,) new id of each kept word
    V = int(keep[0].sum())
    zeros = np.zeros(V, dtype=INDEX)
    first = tables[0]
    out = [
        OrderCounts(zeros, np.arange(V, dtype=INDEX), first.count[keep[0]], zeros,
                    first.starts_bos[keep[0]])
    ]  # fmt: skip
    new_row = new_word  # (rows of order n-1,) new row of each kept row of order n-1
    for t, k in zip(tables[1:], keep[1:], strict=True):
        out.append(
            OrderCounts(
                context=new_row[t.context[k]],
                word=new_word[t.word[k]],
                count=t.count[k],
                suffix=new_row[t.suffix[k]],
                starts_bos=t.starts_bos[k],
            )
        )
        new_row = (np.cumsum(k) - 1).astype(INDEX)
    return out


def count_of_counts(counts: np.ndarray, upto: int = 4) -> np.ndarray:
    """n_k = number of n-grams with count exactly k, for k = 0..upto (index k)."""
    small = counts[counts <= upto]
    return np.bincount(small, minlength=upto + 1).astype(np.int64)


def warn(message: str) -> None:
    """A recoverable problem with the data (e.g. undefined discounts): shown, not raised."""
    warnings.warn(message, NgramWarning, stacklevel=3)


class NgramWarning(UserWarning):
    """Issued when the n-gram builder falls back to a default (the CLI prints it)."""
