"""A linear-probing hash index over one order's sorted n-gram keys (KenLM's "probing" layout).

The keys of an order (``context_row * V + word``, sorted, see :mod:`.counts`) are found by
binary search: log2(M) dependent reads of a large array for each query. The index finds
a key in one or two reads. Its home slot comes from the top 32 bits of a multiplicative hash
(Knuth's), scaled to the S = ⌈1.5 M⌉ slots (at least 1) without a division (Lemire's
reduction):

    home(key) = ((key · 0x9E3779B97F4A7C15 mod 2^64) >> 32) · S >> 32

and the table holds at each slot the key's row, or -1. A key lives at its home slot or, when
that is taken, at the first free slot after it; a lookup walks from the home slot until it
finds the key (its row) or a free slot (not listed).
There is no wrap-around: the table is S slots plus what the last cluster runs past them,
plus one free slot at the end, so every walk ends inside it.

Built in one pass, vectorised: with the keys taken in order of home slot (rows in order
within a slot), the k-th key's slot is

    slot_k = k + max_{j <= k} (home_j − j)

(each key goes to its home or just after the key before it, whichever is later); a sort of
``home << 32 | row`` gives that order. The table depends only on the keys: the same model
always gives the same bytes. Memory: the table's 4 bytes a slot (about 6 bytes an n-gram)
and 8 bytes an n-gram more while it is built.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
LOAD = 1.5  # slots per key (KenLM's probing default)
EMPTY = -1
BLOCK = 1 << 20  # keys hashed at a time: temporaries stay small
MAX_KEYS = (1 << 31) - 2  # rows are int32


def slots(count: int) -> int:
    """S, the slots the keys' homes spread over: ⌈1.5 count⌉, at least 1."""
    return max(1, -(-3 * count // 2))


def _home(keys: np.ndarray, size: int) -> np.ndarray:
    """Each key's home slot among ``size``, as uint64."""
    h = np.asarray(keys, dtype=np.int64).view(np.uint64) * MULTIPLIER
    h >>= np.uint64(32)
    h *= np.uint64(size)
    h >>= np.uint64(32)
    return h


def build(keys: np.ndarray) -> np.ndarray | None:
    """The index of ``keys`` (distinct int64): an int32 table, the row of each key at its
    slot, -1 elsewhere. None when there are too many keys for int32 rows."""
    blocks = (keys[start : start + BLOCK] for start in range(0, len(keys), BLOCK))
    return build_from(blocks, len(keys))


def build_from(blocks: Iterable[np.ndarray], count: int) -> np.ndarray | None:
    """:func:`build` over keys given a block at a time (``count`` in all), so that a writer
    need not hold them all as int64: 8 bytes a key beside the table while it is built."""
    if count > MAX_KEYS:
        return None
    size = slots(count)
    packed = np.empty(count, dtype=np.uint64)  # home << 32 | row
    at = 0
    for keys in blocks:
        h = _home(keys, size)
        h <<= np.uint64(32)
        h |= np.arange(at, at + len(keys), dtype=np.uint64)
        packed[at : at + len(keys)] = h
        at += len(keys)
    if at != count:
        raise ValueError(f"{at} keys given, {count} announced")
    packed.sort()
    # First the last key's slot (the table's length), then each key's slot, a block at a time.
    end, reach = 0, np.int64(-(1 << 62))  # reach: max_{j < start} (home_j − j)
    table = None
    for rounds in range(2):
        if rounds:
            table = np.full(max(size, end), EMPTY, dtype=np.int32)
            reach = np.int64(-(1 << 62))
        for start in range(0, count, BLOCK):
            part = packed[start : start + BLOCK]
            k = np.arange(start, start + len(part), dtype=np.int64)
            lead = (part >> np.uint64(32)).astype(np.int64) - k
            np.maximum.accumulate(np.maximum(lead, reach, out=lead), out=lead)
            reach = lead[-1]
            if table is not None:
                table[lead + k] = (part & np.uint64(0xFFFFFFFF)).astype(np.int32)
        end = int(reach) + count + 1 if count else 1  # one free slot after the last key
    return table


def valid_size(count: int, size: int) -> bool:
    """Whether a table of ``size`` slots can be the index of ``count`` keys."""
    return slots(count) <= size <= slots(count) + count + 1


def lookup(table: np.ndarray, keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each ``query`` key in ``keys`` (through its index ``table``), -1 when absent."""
    query = np.asarray(query, dtype=np.int64)
    if not len(keys):
        return np.full(len(query), -1, dtype=np.int64)
    # Most keys are found, or known absent, at their home slot: one pass over all of them,
    # then a walk for the few that met another key there.
    slot = _home(query, slots(len(keys))).astype(np.intp)
    row = table[slot]
    taken = row >= 0
    found = (keys[row] == query) & taken  # row -1 reads the last key: masked
    out = np.where(found, row, -1).astype(np.int64)
    todo = np.flatnonzero(taken & ~found)
    query, slot = query[todo], slot[todo] + 1
    while len(todo):
        row = table[slot]
        taken = row >= 0
        found = (keys[row] == query) & taken
        out[todo[found]] = row[found]
        walk = taken & ~found  # a different key sits here too: the next slot
        todo, query, slot = todo[walk], query[walk], slot[walk] + 1
    return out
