"""Feedback during long work that is not training: evaluation, decoding, n-gram building, vectors.

The rule is the trainer's (:mod:`elman.train.progress`): with a terminal on stderr a tqdm bar,
else one line every :data:`LINE_EVERY_S` seconds, such as::

    evaluating ptb/test | 1210/2361 batches (51%) | 31 s
    building a 5-gram mkn model | smoothing 3-grams | 62 s

so work that outlasts the interval is never silent, and work that does not prints nothing.
Everything goes to stderr: stdout stays clean for ``--json`` and for piped translations.

This module is in the base layer and imports neither torch nor tqdm at module level: the n-gram
commands (which must not load torch, ``tests/cli/test_no_torch.py``) use it with ``bar=False``,
and tqdm is imported only when a bar is actually drawn. ``ELMAN_PROGRESS_EVERY`` (seconds)
changes the interval, for people who want more or fewer lines and for the tests.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from elman.errors import ElmanError

if TYPE_CHECKING:
    from tqdm import tqdm

LINE_EVERY_S = 30.0  # seconds between two progress lines when no bar is shown (as in training)
ENV = "ELMAN_PROGRESS_EVERY"


def line_every() -> float:
    """The seconds between two lines: ``ELMAN_PROGRESS_EVERY`` when set, else 30."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return LINE_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):  # NaN fails too
        raise ElmanError(f"{ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


class Progress:
    """One piece of long work: call :meth:`update` as it advances, :meth:`close` at its end.

    ``what`` names the work ("evaluating ptb/test"); ``total`` counts its ``unit`` (None: not
    known in advance, or phases only). ``bar=False`` never draws a bar (the torch- and tqdm-free
    n-gram path), only lines. Usable as a context manager.
    """

    def __init__(
        self, what: str, total: int | None = None, *, unit: str = "", bar: bool = True
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done, self.doing = 0, ""
        self.every = line_every()
        self.start = self.last_line = time.monotonic()
        self.bar: tqdm | None = None
        if bar and sys.stderr.isatty():
            from tqdm.auto import tqdm  # only for a bar someone watches

            self.bar = tqdm(
                total=total, desc=what, unit=unit or "it", leave=False,
                dynamic_ncols=True, file=sys.stderr,
            )  # fmt: skip

    def update(self, n: int = 1, *, doing: str | None = None) -> None:
        """``n`` more units done; ``doing`` names the phase now under way ("smoothing 3-grams")."""
        self.done += n
        if doing is not None and doing != self.doing:
            self.doing = doing
            if self.bar is not None:
                self.bar.set_description(f"{self.what} | {doing}")
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every:
            self.last_line = now
            print(self.line(now), file=sys.stderr, flush=True)

    def phase(self, doing: str) -> None:
        """A new phase of the work begins ("counting 3-grams"): shown with the next line."""
        self.update(0, doing=doing)

    def line(self, now: float) -> str:
        """``what | doing | done/total unit (share) | seconds``, the parts that are known."""
        parts = [self.what]
        if self.doing:
            parts.append(self.doing)
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            parts.append(f"{self.done}/{self.total}{unit} ({100 * self.done / self.total:.0f}%)")
        elif self.done and unit:
            parts.append(f"{self.done}{unit}")
        parts.append(f"{now - self.start:.0f} s")
        return " | ".join(parts)

    def over(self, items: Iterable[Any]) -> Iterator[Any]:
        """The items of ``items``, counting one unit as each is done."""
        for item in items:
            yield item
            self.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Counted:
    """A data stream (``len``, ``iter_from``, optionally ``to``) whose batches move a progress.

    What the trainer's ``evaluate_loss`` reads: wrapping the stream shows the progress of an
    evaluation without the loop knowing about it.
    """

    def __init__(self, data: Any, progress: Progress) -> None:
        self.data, self.progress = data, progress

    def __len__(self) -> int:
        return len(self.data)

    def to(self, device: Any) -> Counted:
        moved = self.data.to(device) if hasattr(self.data, "to") else self.data
        return Counted(moved, self.progress)

    def iter_from(self, start: int) -> Iterator[Any]:
        return self.progress.over(self.data.iter_from(start))
