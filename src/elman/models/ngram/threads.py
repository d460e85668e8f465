"""Work spread over the machine's cores by threads, for the n-gram builder's NumPy steps.

NumPy lets go of the GIL inside its sorts, ufuncs, gathers and file writes, so threads run them
on several cores at once: each chunk of a corpus is counted (:mod:`elman.models.ngram.spill`)
and each block of ARPA lines is made (:mod:`elman.models.ngram.arpa`) by a pool of
:data:`WORKERS` threads, while the caller takes the results in order (merging the runs, writing
the file), so the output is the one a single thread gives, byte for byte.

Each thread allocates from its own arena of the C library's allocator, which keeps the memory
freed there for reuse by that thread: at 100M words that kept some 250 MB beyond the memory
budget.  :func:`trim` hands what is free back to the system after each chunk and each order
(with the allocator's mmap threshold fixed instead, every large temporary was mapped afresh and
the build took a quarter longer).
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

# The cores this process may run on, up to 4: beyond that the caller's serial part (the merge,
# the file's writing) is the bound, and every thread's chunk takes its share of the memory.
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def trim() -> None:
    """Give the memory freed in every thread's arena back to the system (glibc; elsewhere a
    no-op), so that what a memory budget counts (the resident size) is what is in use."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


Item = TypeVar("Item")
Made = TypeVar("Made")


def in_order(
    make: Callable[[Item], Made], items: Iterable[Item], workers: int
) -> Iterator[tuple[Item, Made]]:
    """(item, make(item)) for each item in order, made by ``workers`` threads ahead of the
    caller.  At most ``workers`` results are held at once, the one the caller has included: a
    memory budget shared by ``workers`` makers holds.  One worker makes them in the caller's
    thread.  An exception in ``make`` is raised here, in order, once the earlier items are
    taken."""
    if workers <= 1:
        yield from ((item, make(item)) for item in items)
        return
    ahead: deque[tuple[Item, Future[Made]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="elman-ngram") as pool:
        for item in items:
            if len(ahead) == workers:
                yield _take(ahead)
            ahead.append((item, pool.submit(make, item)))
        while ahead:
            yield _take(ahead)


def _take(ahead: deque[tuple[Item, Future[Made]]]) -> tuple[Item, Made]:
    """The first item and its result, its future let go: the result then lives only as long
    as the caller holds it."""
    item, made = ahead.popleft()
    return item, made.result()
