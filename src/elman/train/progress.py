"""What a person sees while an epoch trains: a bar on a terminal, else a line now and then.

The rule (docs/lm.md, "Training"): with ``train.progress = true`` and a terminal on stderr, a
tqdm bar shows the epoch's steps and the last log window's loss, perplexity and tokens/s.
Without a bar (``progress = false``, or the output going to a file, a pipe, a scheduler's log)
the same numbers are printed on stderr as one line every 30 seconds (``ELMAN_PROGRESS_EVERY``
changes it, as for every long piece of work: :mod:`elman.progress`)::

    epoch 2 | step 120/664 (18%) | loss 5.123 | ppl 167.8 | 10234 tok/s

so a recipe can turn the bar off but never make training silent for minutes. A run shorter than
that interval prints only its epoch lines (on stdout, with the results). Reading the clock costs
nothing, and the numbers are those the last log window already brought to the host: no extra
synchronisation.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from elman.progress import line_every

if TYPE_CHECKING:
    from tqdm import tqdm


def wants_bar(progress: bool) -> bool:
    """A bar only where someone watches it: ``progress`` on and stderr (tqdm's) a terminal."""
    return progress and sys.stderr.isatty()


class EpochProgress:
    """One epoch's progress: ``step`` after every step, ``show`` after every log window."""

    def __init__(
        self, epoch: int, total: int, done: int, *, bar: bool, quiet: bool = False
    ) -> None:
        """``done`` of ``total`` steps of ``epoch`` are behind; ``quiet``: show nothing (the
        processes other than rank 0)."""
        self.epoch, self.total, self.done, self.quiet = epoch, total, done, quiet
        self.numbers = ""  # the last log window's loss, perplexity and tokens/s
        self.bar: tqdm | None = None
        if bar and not quiet:
            from tqdm.auto import tqdm  # progress bars belong to the training layer

            self.bar = tqdm(
                total=total,
                initial=done,
                desc=f"epoch {epoch}",
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self.every = line_every()
        self.last_line = time.monotonic()

    def show(self, loss: float, ppl: float, tokens_per_s: float) -> None:
        """The numbers of the log window that just ended."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{ppl:.1f}", tok_s=f"{tokens_per_s:.0f}")
        self.numbers = f" | loss {loss:.3f} | ppl {ppl:.1f} | {tokens_per_s:.0f} tok/s"

    def step(self) -> None:
        """One more step done: move the bar, or print a line when one is due."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last_line >= self.every:
            self.last_line = now
            share = 100 * self.done / max(self.total, 1)
            print(
                f"epoch {self.epoch} | step {self.done}/{self.total} ({share:.0f}%){self.numbers}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
