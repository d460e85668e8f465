"""Optimisers, learning-rate schedules and gradient clipping.

Clipping by global norm is the lecture's rule, applied as written:

    if ‖g‖ ≥ threshold:  g ← (threshold / ‖g‖) · g

where g is the concatenation of every parameter's gradient. It is computed without a host sync
(the scale is min(1, threshold/‖g‖), applied unconditionally), so the step never waits for the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("plateau", "fixed", "constant")


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimiser named in the recipe: ``sgd`` (with optional momentum), ``adam``, ``adamw``."""
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r} unknown; valid: {', '.join(OPTIMIZERS)}")


class LRSchedule:
    """Learning rate per epoch.

    - ``plateau``: multiply the rate by ``decay`` whenever the validation loss fails to improve
      (the ÷k rule of Mikolov's RNNLM and pytorch/examples' word_language_model);
    - ``fixed``: keep the rate for ``decay_start`` epochs, then multiply it by ``decay`` after every
      epoch (Zaremba et al. 2014);
    - ``constant``: never change it.
    The rate never goes below ``min_lr``.
    """

    def __init__(
        self, kind: str, base_lr: float, *, decay: float, decay_start: int, min_lr: float = 0.0
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"schedule {kind!r} unknown; valid: {', '.join(SCHEDULES)}")
        self.kind = kind
        self.base_lr = base_lr
        self.decay = decay
        self.decay_start = decay_start
        self.min_lr = min_lr
        self.lr = base_lr
        self.best = math.inf

    def step(self, epoch: int, valid_loss: float) -> float:
        """After ``epoch`` (1-based) ended with ``valid_loss``: the next epoch's rate."""
        if self.kind == "plateau":
            if valid_loss >= self.best:
                self.lr *= self.decay
        elif self.kind == "fixed":
            self.lr = self.base_lr * self.decay ** max(epoch + 1 - self.decay_start, 0)
        self.best = min(self.best, valid_loss)
        self.lr = max(self.lr, self.min_lr)
        return self.lr

    def state_dict(self) -> dict[str, float]:
        return {"lr": self.lr, "best": self.best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lr = float(state["lr"])
        self.best = float(state["best"])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def clip_grad_norm(params: Iterable[Tensor], threshold: float) -> tuple[Tensor, Tensor]:
    """Scale gradients so that their global L2 norm is at most ``threshold``.

    Returns the pre-clip norm ‖g‖ and whether clipping fired (‖g‖ ≥ threshold), both as 0-d
    tensors on the gradients' device so that the caller decides when to synchronise.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        zero = torch.zeros(())
        return zero, zero.bool()
    norms = torch._foreach_norm(grads)
    total = torch.linalg.vector_norm(torch.stack(norms))
    fired = total >= threshold
    scale = torch.where(fired, threshold / total, torch.ones_like(total))
    torch._foreach_mul_(grads, scale)
    return total, fired


@torch.no_grad()
def clip_grad_value(params: Iterable[Tensor], value: float) -> None:
    """Element-wise clipping: every gradient entry into [-value, value]."""
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(-value, value)
