"""One model thread, a bounded queue, and requests batched while the thread is busy.

Every model call runs on one worker thread: PyTorch's thread count is set once, and two
requests never race inside one model. Requests that can share a forward pass (score, tag) wait
in a queue per (model, question); whenever the worker is free, the queue's waiting requests go
in one batch (at most ``max_batch``). There is no timer: a request alone is served at once, and
under load a batch holds what arrived during the previous one — the batch grows with the load.

``max_queue`` bounds the requests admitted (waiting or running): one more is refused at once
with :class:`Busy` (HTTP 503) instead of piling up; ``timeout_s`` bounds the wait of each
(:class:`TimedOut`, HTTP 504; the work already started finishes, unseen).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The queue is full."""


class TimedOut(Exception):
    """A request waited longer than the per-request time limit."""


class ModelWorker:
    """The model thread and its queues (module docstring)."""

    def __init__(self, *, max_queue: int, timeout_s: float, max_batch: int = 32) -> None:
        self.max_queue, self.timeout_s, self.max_batch = max_queue, timeout_s, max_batch
        self.admitted = 0
        self.batches = 0  # forward passes of batched questions, for the tests and the benchmark
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="elman-model")
        self._queues: dict[tuple[str, str], list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._draining: set[tuple[str, str]] = set()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        if self.admitted >= self.max_queue:
            raise Busy(f"the server is busy ({self.max_queue} requests waiting); retry shortly")
        self.admitted += 1

    async def _wait(self, future: asyncio.Future[T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise TimedOut(
                f"the request took longer than the time limit ({self.timeout_s:g} s); "
                "send less text, or start the server with a larger --timeout"
            ) from None
        finally:
            self.admitted -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model thread, alone."""
        self._admit()
        loop = asyncio.get_running_loop()
        return await self._wait(loop.run_in_executor(self._executor, fn, *args))

    async def batched(
        self, key: tuple[str, str], fn: Callable[[Sequence[Any]], Sequence[T]], item: Any
    ) -> T:
        """``fn(items)[i]`` for this request's ``item``, computed with whatever else waits
        under ``key`` (the same model and question)."""
        self._admit()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queues.setdefault(key, []).append((item, future))
        if key not in self._draining:
            self._draining.add(key)
            loop.create_task(self._drain(key, fn))
        return await self._wait(future)

    async def _drain(
        self, key: tuple[str, str], fn: Callable[[Sequence[Any]], Sequence[Any]]
    ) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues[key]
        try:
            while queue:
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                items = [item for item, _ in batch]
                self.batches += 1
                try:
                    results = await loop.run_in_executor(self._executor, fn, items)
                except Exception as err:  # each request of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining.discard(key)
