"""The training statistics between two log lines (a "window" of steps).

The sums stay on the device, so a training step never waits for the host; ``flush`` reads them
with one synchronisation per window and starts the next window::

    window = MetricWindow(device, clipping=True)
    window.add(loss_sum, num_tokens, grad_norm, clipped)   # after every step
    totals = window.flush()                                # when a log line is due
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from elman.train import distributed


@dataclass(frozen=True)
class WindowTotals:
    """What a window held; ``loss_sum`` and ``tokens`` are summed over every rank."""

    loss_sum: float
    tokens: int
    steps: int
    seconds: float
    grad_norm_sum: float = 0.0  # pre-clip global norms, this rank (0 without clipping)
    clipped: int = 0  # steps where clipping fired

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def grad_norm(self) -> float:
        return self.grad_norm_sum / max(self.steps, 1)

    @property
    def clip_fraction(self) -> float:
        return self.clipped / max(self.steps, 1)


class MetricWindow:
    """Running sums over the steps since the last ``flush``.

    ``clipping``: whether steps report a gradient norm; without it ``flush`` skips reading the
    norm sums (no extra synchronisation).
    """

    def __init__(self, device: torch.device, clipping: bool = False) -> None:
        self.clipping = clipping
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.tokens = torch.zeros((), dtype=torch.int64, device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.clipped = torch.zeros((), dtype=torch.int64, device=device)
        self.steps = 0
        self.start = time.perf_counter()

    def add(
        self,
        loss_sum: Tensor,
        num_tokens: int | Tensor,
        grad_norm: Tensor | None = None,
        clipped: Tensor | None = None,
    ) -> None:
        """Count one step: its summed loss, its target count, its pre-clip norm and clip flag."""
        self.loss += loss_sum.detach().double()
        self.tokens += num_tokens
        if grad_norm is not None:
            self.grad_norm += grad_norm
        if clipped is not None:
            self.clipped += clipped
        self.steps += 1

    def flush(self) -> WindowTotals:
        """The window's totals (one host sync, loss and tokens summed over ranks); then reset."""
        distributed.all_reduce_sum(self.loss)  # every rank logs the global batch's loss
        distributed.all_reduce_sum(self.tokens)
        loss_sum, tokens = float(self.loss.item()), int(self.tokens.item())
        # measured after the sync, so that the time covers the steps the device still ran
        seconds = max(time.perf_counter() - self.start, 1e-9)
        grad_norm_sum, clipped = 0.0, 0
        if self.clipping:
            grad_norm_sum, clipped = float(self.grad_norm.item()), int(self.clipped.item())
        totals = WindowTotals(loss_sum, tokens, self.steps, seconds, grad_norm_sum, clipped)
        self.reset()
        return totals

    def reset(self) -> None:
        """Empty the window and restart its clock."""
        self.loss.zero_()
        self.tokens.zero_()
        self.grad_norm.zero_()
        self.clipped.zero_()
        self.steps = 0
        self.start = time.perf_counter()
