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

from elman.train.config import OPTIMIZERS, SCHEDULES

FUSED_DEVICES = ("cpu", "cuda")  # where PyTorch has the fused SGD, Adam and AdamW kernels


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimiser named in the recipe: ``sgd`` (with optional momentum), ``adam``, ``adamw``.

    Fused (one kernel for the whole update) when every weight is on the CPU or a CUDA device.
    PyTorch's default on the CPU is a loop over the weights, op by op, with a temporary per
    weight: for a 28M-weight model on one thread that was a tenth of a training step. Fused SGD
    takes the same steps bit for bit; fused Adam and AdamW agree to float32 rounding
    (tests/train/test_optim.py).
    """
    params = [p for p in params if p.requires_grad]
    fused = bool(params) and all(p.device.type in FUSED_DEVICES for p in params)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"optimizer {name!r} unknown; valid: {', '.join(OPTIMIZERS)}")


class LRSchedule:
    """Learning rate per epoch.

    - ``plateau``: multiply the rate by ``decay`` whenever the validation loss fails to improve
      (the ÷k rule of pytorch/examples' word_language_model);
    - ``newbob``: Mikolov's RNNLM rule (after ICSI's QuickNet): full rate while every epoch
      improves the validation loss; from the first epoch that does not, multiply the rate by
      ``decay`` after every epoch; when an epoch fails to improve again while decaying, training
      is done (``self.done``);
    - ``fixed``: keep the rate for ``decay_start`` epochs, then multiply it by ``decay`` after every
      epoch (Zaremba et al. 2014);
    - ``constant``: never change it.
    An epoch "improves" when its validation loss is below best × (1 − ``min_improvement``): RNNLM
    uses 0.003 on the log-likelihood. The rate never goes below ``min_lr``.
    """

    def __init__(
        self,
        kind: str,
        base_lr: float,
        *,
        decay: float,
        decay_start: int,
        min_lr: float = 0.0,
        min_improvement: float = 0.0,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"schedule {kind!r} unknown; valid: {', '.join(SCHEDULES)}")
        self.kind = kind
        self.base_lr = base_lr
        self.decay = decay
        self.decay_start = decay_start
        self.min_lr = min_lr
        self.min_improvement = min_improvement
        self.lr = base_lr
        self.best = math.inf
        self.last_improved = True  # did the last epoch improve by min_improvement?
        self.annealing = False  # newbob: decaying after every epoch
        self.done = False  # newbob: no improvement while decaying

    def step(self, epoch: int, valid_loss: float) -> float:
        """After ``epoch`` (1-based) ended with ``valid_loss``: the next epoch's rate."""
        improved = valid_loss < self.best * (1.0 - self.min_improvement)
        self.last_improved = improved
        if self.kind == "plateau":
            if not improved:
                self.lr *= self.decay
        elif self.kind == "newbob":
            if not improved:
                self.done = self.annealing
                self.annealing = True
            if self.annealing:
                self.lr *= self.decay
        elif self.kind == "fixed":
            self.lr = self.base_lr * self.decay ** max(epoch + 1 - self.decay_start, 0)
        self.best = min(self.best, valid_loss)
        self.lr = max(self.lr, self.min_lr)
        return self.lr

    def restart(self, lr: float, epoch: int) -> None:
        """Continue at ``lr`` from epoch ``epoch`` on (a resume that changes ``train.lr``).

        plateau and newbob decay from the new rate; ``fixed`` takes the base rate that gives
        ``lr`` in this epoch, so that it keeps decaying by ``decay`` per epoch from there.
        """
        self.lr = lr
        if self.kind == "fixed":
            self.base_lr = lr / self.decay ** max(epoch - self.decay_start, 0)

    def state_dict(self) -> dict[str, float]:
        return {
            "lr": self.lr,
            "best": self.best,
            "annealing": float(self.annealing),
            "done": float(self.done),
            "base_lr": self.base_lr,  # the recipe's lr, unless a resume restarted the rate
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lr = float(state["lr"])
        self.best = float(state["best"])
        # checkpoints written before restart() existed: the recipe's lr, as constructed
        self.base_lr = float(state.get("base_lr", self.base_lr))
        # checkpoints written before the newbob schedule have neither key
        self.annealing = bool(state.get("annealing", 0.0))
        self.done = bool(state.get("done", 0.0))


class ParameterAverage:
    """The running mean of the weights over training steps (Polyak & Juditsky 1992).

        w̄_n = w̄_{n-1} + (w_n − w̄_{n-1}) / n

    after every optimiser step from the epoch where averaging starts; the model is evaluated and
    saved with w̄ while the optimiser keeps stepping w. Averaging the last epochs' iterates removes
    the noise of a constant learning rate: the "A" of Merity et al.'s ASGD for LSTM LMs, and
    ``torch.optim.swa_utils``' uniform average, without a second model in memory.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.mean = [p.detach().clone() for p in params]
        self.count = 1

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        torch._foreach_lerp_(self.mean, [p.detach() for p in self.params], 1.0 / self.count)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights and the mean (its own inverse)."""
        for p, m in zip(self.params, self.mean, strict=True):
            tmp = p.detach().clone()
            p.copy_(m)
            m.copy_(tmp)


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
