"""The n-gram builder's threads: results in order, a bounded number held, errors raised in
order, and the allocator's trim harmless."""

from __future__ import annotations

import threading
import time

import pytest

from elman.models.ngram import threads
from elman.models.ngram.threads import in_order


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_come_in_order_whatever_finishes_first(workers):
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)  # early items finish last
        return i * i

    assert list(in_order(slow_first, range(10), workers)) == [(i, i * i) for i in range(10)]


def test_at_most_workers_results_are_held():
    live: set[int] = set()
    most = [0]
    lock = threading.Lock()

    def make(i: int) -> int:
        with lock:
            live.add(i)
            most[0] = max(most[0], len(live))
        return i

    for i, _ in in_order(make, range(20), 3):
        with lock:
            live.discard(i)  # the caller is done with it
    assert most[0] <= 3


def test_an_error_is_raised_after_the_earlier_results():
    def make(i: int) -> int:
        if i == 4:
            raise ValueError("four")
        return i

    taken = []
    with pytest.raises(ValueError, match="four"):
        for i, _ in in_order(make, range(10), 2):
            taken.append(i)
    assert taken == [0, 1, 2, 3]


def test_one_worker_makes_them_in_the_callers_thread():
    seen = []
    list(in_order(lambda i: seen.append(threading.get_ident()), range(3), 1))
    assert set(seen) == {threading.get_ident()}


def test_trim_is_harmless():
    threads.trim()
    assert threads.WORKERS >= 1
