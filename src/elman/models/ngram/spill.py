"""Counting one order of n-grams in a memory budget: sorted runs, spilled and merged.

Counting the n-grams of order n sorts one int64 key per token (:func:`unique`), with the
sort's permutation, the inverse and the counts beside it: about 48 bytes a token, 4.8 GB
for a 100M-token corpus.  Given a budget, the tokens are taken in chunks that fit what the
budget leaves beside the arrays already held, as lmplz's ``-S`` does:

1. each chunk's keys are sorted and counted on their own: a *run* of distinct keys, their
   counts, the row of each n-gram's suffix and whether it starts with <s>; with more than
   one chunk the run is written to a temporary folder (lmplz's ``-T``) and each token keeps
   the index of its n-gram in its chunk's run;
2. the runs are merged block by block, read from their files a block at a time:
   everything up to the smallest last key among the blocks is complete, so it is counted
   (the counts of equal keys summed) and written into the table, and the rest waits for
   the next blocks;
3. each token's index in its run becomes its row in the merged table, which the merge
   gives for every key of every run as it goes.

With several cores the chunks are counted by threads at once, each in its share of the budget
(:mod:`elman.models.ngram.threads`); the runs are taken in order, so the result is the same.

The result is the table and the rows that one ``np.unique`` over all the tokens gives, bit
for bit (``tests/models/test_ngram_spill.py`` forces the spill with a tiny budget).

Memory.  The corpus (:class:`Tokens`: ids, capped positions, rows) is held while an order
is counted.  Once an order's chunks are spilled the previous rows are dropped before the
merge, and at the highest order, whose rows nobody reads, the corpus itself is: the merge
then holds only the tables.  The runs are read with plain file reads, not mapped, so that
the pages of a merged run do not stay resident.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram import threads
from elman.models.ngram.threads import in_order

# The count tables hold rows, words and counts as int32 (half the memory of int64): each
# is below the number of tokens, which must stay below 2**31.  Keys context * V + word
# can pass 2**31 and are always int64.
INDEX = np.int32
# What counting a chunk holds per token at its peak: the keys, :func:`unique`'s sort and the
# run made (70 bytes measured on 4M keys, nearly all distinct).
BYTES_PER_TOKEN = 72
RESERVE = 160 << 20  # bytes of the budget left to the interpreter, NumPy and the allocator
MIN_CHUNK = 1024  # tokens: below this, chunks would only add runs
# Tokens from which an order held whole is still counted in a chunk a thread and merged: below
# it, the merge costs more than the threads' sorts save.
PARALLEL_TOKENS = 1 << 20
# At most this many runs an order: a budget smaller than what is held would otherwise cut the
# corpus into thousands of tiny runs whose merge is all overhead; it is exceeded instead.
MAX_RUNS = 64


@dataclass
class Tokens:
    """The corpus as it is counted, one order after another.

    Attributes:
        ids: shape (T,), the word id of every token (int32, or uint16 for a vocabulary
            that fits it).
        pos: shape (T,), each token's position in its sentence, capped (any value >= the
            highest order counted reads the same).
        row: shape (T,), the row of the (n-1)-gram ending at each token in the last table
            counted, -1 where none ends (``ids`` itself for n = 2: a unigram's row is its
            word); None once the last order is counted.
    All three are None after the highest order's count (:func:`count_order` ``last``).
    """

    ids: np.ndarray | None
    pos: np.ndarray | None
    row: np.ndarray | None

    def nbytes(self) -> int:
        arrays = {id(a): a for a in (self.ids, self.pos, self.row) if a is not None}
        return sum(a.nbytes for a in arrays.values())  # ids and row are one array for n = 2


@dataclass
class Run:
    """Distinct keys ``context * V + word`` in sorted order, with per key: the count, the row
    of the suffix (w_2..w_n) in the order n-1 table, and whether w_1 is <s>."""

    keys: np.ndarray
    count: np.ndarray
    suffix: np.ndarray
    starts_bos: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def part(self, start: int, stop: int) -> Run:
        return Run(*(np.asarray(a[start:stop]) for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.keys, self.count, self.suffix, self.starts_bos


NAMES = ("keys", "count", "suffix", "starts_bos")


class SpilledRun:
    """A :class:`Run` in four raw files; parts are read on demand (``part``), never mapped."""

    def __init__(self, run: Run, stem: Path) -> None:
        self.paths = [stem.with_suffix(f".{name}") for name in NAMES]
        self.dtypes = [a.dtype for a in run.arrays()]
        self.length = len(run)
        for path, array in zip(self.paths, run.arrays(), strict=True):
            array.tofile(path)

    def __len__(self) -> int:
        return self.length

    def part(self, start: int, stop: int) -> Run:
        stop = max(start, min(stop, self.length))
        return Run(
            *(
                np.fromfile(p, dtype=d, count=stop - start, offset=start * d.itemsize)
                for p, d in zip(self.paths, self.dtypes, strict=True)
            )
        )


def chunk_tokens(memory: int | None, held: int = 0) -> int | None:
    """Tokens per chunk for a budget of ``memory`` bytes of which ``held`` are taken by the
    arrays already in memory (None: no limit).  At least ``MIN_CHUNK`` (and
    :func:`count_order` makes at most ``MAX_RUNS`` chunks): a budget smaller than what is held
    is exceeded, not refused."""
    if memory is None:
        return None
    return max(MIN_CHUNK, (memory - RESERVE - held) // BYTES_PER_TOKEN)


def count_order(
    tokens: Tokens,
    n: int,
    vocab_size: int,
    chunk: int | None = None,
    temp_dir: str | Path | None = None,
    last: bool = False,
) -> Run:
    """The distinct n-grams of order ``n`` (a :class:`Run` over the whole corpus).  Each
    token's row in it (-1 where no n-gram ends) replaces ``tokens.row``, which held the rows
    of order n-1; with ``last`` no rows are made and ``tokens`` is emptied.  ``chunk`` tokens
    are sorted at a time (None: all at once); runs of several chunks go to a temporary
    folder in ``temp_dir`` (default: the system's)."""
    assert tokens.ids is not None and tokens.pos is not None and tokens.row is not None
    T = len(tokens.ids)
    if chunk is not None:
        # The threads that count chunks at once share the budget, with one share left over:
        # their peaks meet, beside what each thread's allocator arena holds between trims (at
        # 100M words in 2 GB, half a chunk a thread peaked at 1,977-2,087 MB).
        share = max(MIN_CHUNK, _share(chunk, threads.WORKERS)) if chunk < T else chunk
        chunk = max(share, -(-T // MAX_RUNS))
    if (chunk is None or chunk >= T) and threads.WORKERS > 1 and T >= PARALLEL_TOKENS:
        # in memory, but in a chunk a thread, each sorted on its own core, then merged
        return _count_runs(tokens, n, vocab_size, -(-T // threads.WORKERS), None, last)
    if chunk is None or chunk >= T:
        run, (at, index) = _count_chunk(tokens, n, vocab_size, 0, T)
        if last:
            tokens.ids = tokens.pos = tokens.row = None
        else:
            tokens.row = np.full(T, -1, dtype=INDEX)
            tokens.row[at] = index
        return run
    try:
        with tempfile.TemporaryDirectory(prefix="elman-ngram-", dir=temp_dir) as folder:
            return _count_runs(tokens, n, vocab_size, max(1, chunk), Path(folder), last)
    except OSError as err:  # no such folder, no space left, no permission
        where = temp_dir if temp_dir is not None else tempfile.gettempdir()
        raise ElmanError(
            f"{where}: cannot write the sorted runs of the {n}-gram counts "
            f"({err.strerror or err}); give --temp-dir a folder with space, or more --memory"
        ) from None


def _share(chunk: int, workers: int) -> int:
    """Tokens a thread counts at a time when ``workers`` threads share a chunk's budget: 0.4 of
    the chunk each for two (and 2/(2w+1) for w), not a half: their peaks meet, beside what each
    thread's allocator arena holds between trims."""
    return chunk if workers <= 1 else 2 * chunk // (2 * workers + 1)


def _count_runs(tokens: Tokens, n: int, V: int, chunk: int, folder: Path | None, last: bool) -> Run:
    """Count ``chunk`` tokens at a time into runs, spilled to ``folder`` (None: kept in memory,
    the chunks only there for the threads), and merge them."""
    assert tokens.ids is not None and tokens.pos is not None and tokens.row is not None
    T = len(tokens.ids)
    new_row = None if last else np.full(T, -1, dtype=INDEX)
    bounds = range(0, T, chunk)

    def counted(i: int) -> tuple[Run | SpilledRun, np.ndarray, np.ndarray]:
        run, (at, index) = _count_chunk(tokens, n, V, bounds[i], bounds[i] + chunk)
        if folder is None:
            return run, at, index
        stored = SpilledRun(run, folder / f"run{i}")
        del run
        threads.trim()  # the chunk's temporaries, freed in this thread's arena
        return stored, at, index

    runs: list[Run | SpilledRun] = []
    # the chunks are counted by threads (elman.models.ngram.threads), each in its share of
    # the budget (count_order divides the chunk among them)
    for _, (run, at, index) in in_order(counted, range(len(bounds)), threads.WORKERS):
        if new_row is not None:
            new_row[at] = index  # the index in this chunk's run, for now
        runs.append(run)
        del run, at, index
    # The previous rows (and at the last order the whole corpus) are no longer read: let
    # them go before the merge.
    tokens.row = None
    if last:
        tokens.ids = tokens.pos = None
    # A merge step holds its blocks twice and sorts them (some 110 bytes a key against a
    # chunk's 72 a token), beside the table it fills: half a chunk of keys at a time.
    rows: list[np.ndarray] | None = None if new_row is None else []
    table = merge(runs, block=max(MIN_CHUNK, chunk // 2 // len(runs)), rows=rows)
    threads.trim()
    if new_row is not None:
        assert tokens.pos is not None and rows is not None
        for start, rows_of_run in zip(bounds, rows, strict=True):
            at = start + np.flatnonzero(tokens.pos[start : start + chunk] >= n - 1)
            new_row[at] = rows_of_run[new_row[at]]
    tokens.row = new_row
    return table


def _count_chunk(
    tokens: Tokens, n: int, V: int, start: int, stop: int
) -> tuple[Run, tuple[np.ndarray, np.ndarray]]:
    ids, pos, row = tokens.ids, tokens.pos, tokens.row
    assert ids is not None and pos is not None and row is not None
    at = start + np.flatnonzero(pos[start:stop] >= n - 1)  # tokens that end an n-gram
    keys = row[at - 1].astype(np.int64, copy=False) * V + ids[at]
    uniq, first, inverse, count = unique(keys)
    del keys
    ends = at[first]  # one occurrence of each n-gram
    run = Run(uniq, count.astype(INDEX), row[ends].astype(INDEX), pos[ends] == n - 1)
    return run, (at, inverse.astype(INDEX))


def merge(
    runs: Sequence[Run | SpilledRun], block: int, rows: list[np.ndarray] | None = None
) -> Run:
    """The runs as one: every key once, in order, with the counts of equal keys summed.
    Given a list ``rows``, it receives per run the row of each of its keys in the result
    (int32), which the merge knows as it goes (no search of the result afterwards).

    The table is written into arrays sized for the sum of the runs' lengths and cut to the
    keys found: the pages past the end are never touched, so they take no memory."""
    taken = [0] * len(runs)
    found: list[list[np.ndarray]] = [[] for _ in runs]
    capacity = sum(len(r) for r in runs)
    first = next((r.part(0, 0) for r in runs), None)
    if first is None:
        raise ValueError("merge needs at least one run")
    out = Run(*(np.empty(capacity, dtype=a.dtype) for a in first.arrays()))
    filled = 0
    while True:
        blocks = {i: r.part(taken[i], taken[i] + block) for i, r in enumerate(runs)
                  if taken[i] < len(r)}  # fmt: skip
        if not blocks:
            break
        # everything up to the smallest last key of the blocks is in one of the blocks
        bound = min(b.keys[-1] for b in blocks.values())
        pieces, owners = [], []
        for i, b in blocks.items():
            stop = int(np.searchsorted(b.keys, bound, side="right"))
            pieces.append(b.part(0, stop))
            owners.append(i)
            taken[i] += stop
        del blocks
        keys = np.concatenate([p.keys for p in pieces])
        uniq, first_at, inverse, _ = unique_of_runs(keys)
        count = np.concatenate([p.count for p in pieces])
        summed = np.bincount(inverse, weights=count, minlength=len(uniq))  # exact below 2**53
        end = filled + len(uniq)
        out.keys[filled:end] = uniq
        out.count[filled:end] = summed
        out.suffix[filled:end] = np.concatenate([p.suffix for p in pieces])[first_at]
        out.starts_bos[filled:end] = np.concatenate([p.starts_bos for p in pieces])[first_at]
        if rows is not None:
            cuts = np.cumsum([len(p) for p in pieces])[:-1]
            for i, part in zip(owners, np.split(inverse, cuts), strict=True):
                found[i].append((part + filled).astype(INDEX))
        filled = end
    if rows is not None:
        rows.extend(np.concatenate(f) if f else np.zeros(0, dtype=INDEX) for f in found)
    return out.part(0, filled)


def unique(
    keys: np.ndarray, bits: int = 63
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_index=True, return_inverse=True, return_counts=True)`` for
    non-negative int64 keys, bit for bit, faster on millions of keys.

    ``np.unique`` finds the sorting permutation with ``argsort``.  Here each key is shifted
    left by b bits, b enough to number the keys, and its index goes into the low bits: one
    ``np.sort`` of the packed values (NumPy's SIMD sort for integers) then gives the sorted
    keys and the permutation, equal keys in order of index, so the first of each run is the
    first occurrence that ``return_index`` gives.  Keys too wide to leave b of the ``bits``
    free are first put in order of their high bits (a stable radix sort of up to 16 bits),
    and each bucket's low bits are packed and sorted alone; wider ones go to ``np.unique``.
    """
    n = len(keys)
    b = max(1, (n - 1).bit_length())
    low = bits - b  # the bits of a key that fit beside its index
    unpackable = n == 0 or int(keys.min()) < 0 or low < 1
    high = 0 if unpackable else int(keys.max()).bit_length() - low  # the bits that do not
    if unpackable or high > 16:
        return np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    if high <= 0:
        order, ordered = _packed_sort(keys, np.arange(n, dtype=np.int64), b, [n])
    else:
        bucket = (keys >> low).astype(np.uint16)
        perm = np.argsort(bucket, kind="stable")  # radix sort: by bucket, then by index
        ends = np.cumsum(np.bincount(bucket, minlength=1 << high)).tolist()
        del bucket
        order, _ = _packed_sort(keys[perm] & ((1 << low) - 1), perm, b, ends)
        del perm
        ordered = keys[order]
    return _runs_of(ordered, order)


def unique_of_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`unique` for keys that are a few sorted runs end to end (the blocks a merge
    joins): a stable ``argsort`` (timsort, which merges the runs it finds) is several times
    faster there than sorting from scratch (0.25 s against 3.1 s for ten runs of 1M keys)."""
    if not len(keys):
        return np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(keys, kind="stable")
    return _runs_of(keys[order], order)


def _runs_of(
    ordered: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique``'s four arrays from the sorted keys and the stable sorting permutation."""
    n = len(ordered)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(new, dtype=np.intp) - 1
    return ordered[starts], order[starts], inverse, np.diff(starts, append=n)


def _packed_sort(
    values: np.ndarray, index: np.ndarray, b: int, ends: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) in order of (value, index) within each slice ending at ``ends``, by one
    ``np.sort`` per slice of value << b | index."""
    packed = values.astype(np.int64) << b
    packed |= index
    for lo, hi in zip([0, *ends[:-1]], ends, strict=True):
        packed[lo:hi].sort()
    order = packed & ((1 << b) - 1)
    packed >>= b
    return order, packed
