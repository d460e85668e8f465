"""Counting one order of n-grams in a memory budget: sorted runs, spilled and merged.

Counting the n-grams of order n sorts one int64 key per token (:func:`unique`), with the
sort's permutation, the inverse and the counts beside it: about 48 bytes a token, 4.8 GB
for a 100M-token corpus.  Given a budget, the tokens are taken in chunks that fit it, as
lmplz's ``-S`` does:

1. each chunk's keys are sorted and counted on their own: a *run* of distinct keys, their
   counts, the row of each n-gram's suffix and whether it starts with <s>; with more than
   one chunk the run is written to a temporary folder (lmplz's ``-T``) and each token keeps
   the index of its n-gram in its chunk's run;
2. the runs are merged block by block, ``block`` keys of each at a time: everything up to
   the smallest last key among the blocks is complete, so it is counted (the counts of equal
   keys summed) and appended to the table, and the rest waits for the next blocks;
3. each token's index in its run becomes its row in the merged table, through one
   ``np.searchsorted`` of the run's (sorted, distinct) keys in the table's.

The result is the table and the rows that one ``np.unique`` over all the tokens gives, bit
for bit (``tests/models/test_ngram_spill.py`` forces the spill with a tiny budget).  What
the budget bounds is this sorting; the corpus's id arrays, the previous order's rows and
the merged tables themselves are held in memory as before.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elman.errors import ElmanError

BYTES_PER_TOKEN = 64  # np.unique's working set per key, with room to spare
MIN_CHUNK = 1024  # tokens: below this, chunks would only add runs


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


def chunk_tokens(memory: int | None) -> int | None:
    """Tokens per chunk for a sorting budget of ``memory`` bytes (None: no limit)."""
    return None if memory is None else max(MIN_CHUNK, memory // BYTES_PER_TOKEN)


def count_order(
    ids: np.ndarray,
    pos: np.ndarray,
    row: np.ndarray,
    n: int,
    vocab_size: int,
    chunk: int | None = None,
    temp_dir: str | Path | None = None,
) -> tuple[Run, np.ndarray]:
    """The distinct n-grams of order ``n`` (a :class:`Run` over the whole corpus) and each
    token's row in it (-1 where no n-gram ends), given ``row``, each token's row in the
    order n-1 table.  ``chunk`` tokens are sorted at a time (None: all at once); runs of
    several chunks go to a temporary folder in ``temp_dir`` (default: the system's)."""
    T = len(ids)
    if chunk is None or chunk >= T:
        run, (at, index) = _count_chunk(ids, pos, row, n, vocab_size, 0, T)
        new_row = np.full(T, -1, dtype=row.dtype)
        new_row[at] = index
        return run, new_row
    try:
        with tempfile.TemporaryDirectory(prefix="elman-ngram-", dir=temp_dir) as folder:
            return _count_spilled(ids, pos, row, n, vocab_size, max(1, chunk), Path(folder))
    except OSError as err:  # no such folder, no space left, no permission
        where = temp_dir if temp_dir is not None else tempfile.gettempdir()
        raise ElmanError(
            f"{where}: cannot write the sorted runs of the {n}-gram counts "
            f"({err.strerror or err}); give --temp-dir a folder with space, or more --memory"
        ) from None


def _count_spilled(
    ids: np.ndarray, pos: np.ndarray, row: np.ndarray, n: int, V: int, chunk: int, folder: Path
) -> tuple[Run, np.ndarray]:
    new_row = np.full(len(ids), -1, dtype=row.dtype)
    bounds = range(0, len(ids), chunk)
    runs = []
    for i, start in enumerate(bounds):
        run, (at, index) = _count_chunk(ids, pos, row, n, V, start, start + chunk)
        new_row[at] = index  # the index in this chunk's run, for now
        runs.append(_spill(run, folder / f"run{i}"))
        del run, at, index
    table = merge(runs, block=max(MIN_CHUNK, chunk // len(runs)))
    for start, run in zip(bounds, runs, strict=True):
        at = start + np.flatnonzero(pos[start : start + chunk] >= n - 1)
        rows_of_run = np.searchsorted(table.keys, run.keys).astype(row.dtype)
        new_row[at] = rows_of_run[new_row[at]]
    return table, new_row


def _count_chunk(
    ids: np.ndarray, pos: np.ndarray, row: np.ndarray, n: int, V: int, start: int, stop: int
) -> tuple[Run, tuple[np.ndarray, np.ndarray]]:
    at = start + np.flatnonzero(pos[start:stop] >= n - 1)  # tokens that end an n-gram
    keys = row[at - 1].astype(np.int64, copy=False) * V + ids[at]
    uniq, first, inverse, count = unique(keys)
    del keys
    ends = at[first]  # one occurrence of each n-gram
    run = Run(uniq, count.astype(row.dtype), row[ends], pos[ends] == n - 1)
    return run, (at, inverse.astype(row.dtype))


def _spill(run: Run, stem: Path) -> Run:
    """``run`` written to ``stem``.*.npy and mapped back read-only (its memory freed)."""
    names = ("keys", "count", "suffix", "starts_bos")
    for name, array in zip(names, run.arrays(), strict=True):
        np.save(stem.with_suffix(f".{name}.npy"), array)
    return Run(*(np.load(stem.with_suffix(f".{name}.npy"), mmap_mode="r") for name in names))


def merge(runs: list[Run], block: int) -> Run:
    """The runs as one: every key once, in order, with the counts of equal keys summed."""
    taken = [0] * len(runs)
    parts: list[Run] = []
    while True:
        live = [i for i, r in enumerate(runs) if taken[i] < len(r)]
        if not live:
            break
        # everything up to the smallest last key of the blocks is in one of the blocks
        bound = min(runs[i].keys[min(taken[i] + block, len(runs[i])) - 1] for i in live)
        pieces = []
        for i in live:
            stop = min(taken[i] + block, len(runs[i]))
            stop = taken[i] + int(
                np.searchsorted(runs[i].keys[taken[i] : stop], bound, side="right")
            )
            pieces.append(runs[i].part(taken[i], stop))
            taken[i] = stop
        keys = np.concatenate([p.keys for p in pieces])
        uniq, first, inverse, _ = unique(keys)
        count = np.concatenate([p.count for p in pieces])
        summed = np.bincount(inverse, weights=count, minlength=len(uniq))  # exact below 2**53
        suffix = np.concatenate([p.suffix for p in pieces])[first]
        starts_bos = np.concatenate([p.starts_bos for p in pieces])[first]
        parts.append(Run(uniq, summed.astype(count.dtype), suffix, starts_bos))
    if not parts:
        return runs[0].part(0, 0)
    columns = zip(*(p.arrays() for p in parts), strict=True)
    return Run(*(np.concatenate(arrays) for arrays in columns))


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
