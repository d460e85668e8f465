"""Dynamic evaluation (Krause, Kahembwe, Murray and Renals 2018): the model keeps learning on the
text it scores.

The test stream is read in segments s_1, s_2, … of ``bptt`` tokens at batch 1. Each segment is
scored first, with the weights as they are, and then used for one gradient step, so every
token's probability comes from weights that have seen only the tokens before it:

    θ_i = θ_{i−1} − η ∇_θ L(s_i; θ_{i−1}) + λ (θ_0 − θ_{i−1}),

L the mean cross entropy of segment i and θ_0 the trained weights; λ pulls the adapted weights
back toward θ_0 (the paper's global prior; λ = 0 is plain SGD dynamic evaluation). The hidden
state carries over from segment to segment, as in static evaluation, so with η = 0 the scores
are exactly the static ones. The model's weights are restored when the pass ends. Dropout is
off (``model.eval()``); gradients flow all the same.

The paper's RMS rule (``rule = "rms"``, its "RMS with an RMS global prior") scales each weight's
step by the root mean square of its gradient over training text, collected beforehand,

    MS_g = (1/N) Σ_j (∇_θ L(s_j^train))²,
    θ_i = θ_{i−1} − η ∇_θ L(s_i; θ_{i−1}) / (√MS_g + ε) + λ (θ_0 − θ_{i−1}) ⊙ r,
    r = min(√MS_g / mean(√MS_g), 1/λ),

so weights whose gradients are usually small move less per unit of gradient, and the pull back
to θ_0 is strongest on the weights training moved most (r is clipped so that λ r ≤ 1, and the mean
is over every weight of the model). N segments of ``stats_tokens`` training tokens, at batch 1
and of the same length as the scored segments, give MS_g; ε = ``eps``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from elman.train.trainer import detach_state

RULES = ("sgd", "rms")
# tokens per step for a model without a recipe bptt (the NPLM, whose batches are windows)
DEFAULT_SEGMENT = 20


@dataclass(frozen=True)
class DynamicSettings:
    """How dynamic evaluation adapts the weights (module docstring)."""

    lr: float  # η
    decay: float = 0.0  # λ, the pull back to the trained weights θ_0
    rule: str = "sgd"  # "sgd" or "rms"
    segment: int | None = None  # tokens per step; None: the recipe's bptt
    stats_tokens: int = 100_000  # rms: the training tokens whose gradients give MS_g
    eps: float = 1e-3  # rms: ε (the value of Krause et al.'s code)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"dynamic rule {self.rule!r} unknown; valid: {', '.join(RULES)}")


# (model, batch, state) -> ln p(y_t) of the segment's targets (T,), the mask of real ones, state
SegmentScores = Callable[[torch.nn.Module, Any, Any], tuple[torch.Tensor, torch.Tensor, Any]]


def segment_loss(model: Any, batch: Any, state: Any) -> tuple[Any, Any, Any]:
    """ln p(y_t) of a batch-1 segment's targets (T,), the mask of real ones, the next state,
    for a recurrent LM with ``hidden`` and ``target_logprobs`` (``elman.models.rnnlm.RNNLM``)."""
    h, state = model.hidden(batch.inputs, state)  # (T, 1, H)
    picked = model.target_logprobs(h, batch.targets)[:, 0]  # (T,)
    return picked, batch.targets[:, 0] >= 0, state


def window_scores(model: torch.nn.Module, batch: Any, state: Any) -> tuple[Any, Any, Any]:
    """The same for a feed-forward LM's batch of consecutive windows (no state to carry)."""
    logp = torch.log_softmax(model(batch.contexts).float(), dim=-1)  # (T, V)
    picked = logp.gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1)  # (T,)
    return picked, torch.ones_like(batch.targets, dtype=torch.bool), None


def gradient_rms(
    model: torch.nn.Module, batches: Iterable[Any], scores: SegmentScores = segment_loss
) -> list[torch.Tensor]:
    """√MS_g of every trainable weight: the root mean square of its gradient of each segment's
    mean cross entropy, over ``batches`` (training text at batch 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    model.eval()
    state, count = None, 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        picked, real, state = scores(model, batch, state)
        if real.any():
            (-picked[real].mean()).backward()
            with torch.no_grad():
                for total, p in zip(sums, params, strict=True):
                    if p.grad is not None:
                        total.add_(p.grad.pow(2))
            count += 1
        state = detach_state(state)
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("no training segment to collect gradient statistics from")
    return [(total / count).sqrt_() for total in sums]


class Adapter:
    """Dynamic evaluation's score-then-learn, one segment at a time, on ``model`` in place.

    :meth:`segment` scores a segment with the weights as they are, then takes one step on it
    (SGD, or the RMS rule with ``rms``); :meth:`restore` puts the trained weights θ_0 back.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float,
        decay: float = 0.0,
        rms: Sequence[torch.Tensor] | None = None,
        eps: float = 1e-3,
        scores: SegmentScores = segment_loss,
    ) -> None:
        self.model, self.lr, self.decay, self.scores = model, lr, decay, scores
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.original = [p.detach().clone() for p in self.params]
        self.rule = None if rms is None else _RMSRule(rms, decay, eps)
        model.eval()

    def segment(self, batch: Any, state: Any = None) -> tuple[torch.Tensor, Any]:
        """ln p(y_t) of the segment's real targets, scored before its step; the next state."""
        self.model.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(self.lr > 0.0):  # rate 0 (the static scores): no graph
            picked, real, state = self.scores(self.model, batch, state)
        if self.lr > 0.0 and real.any():
            (-picked[real].mean()).backward()
            if self.rule is None:
                _step(self.params, self.original, self.lr, self.decay)
            else:
                self.rule.step(self.params, self.original, self.lr)
        # a copy: keeping the indexed tensor itself kept each segment's graph memory alive
        # (PTB valid at 35-token segments grew by ~150 MB/s until the OOM killer stopped it)
        return picked.detach()[real].clone(), detach_state(state)

    @torch.no_grad()
    def restore(self) -> None:
        for p, p0 in zip(self.params, self.original, strict=True):
            p.copy_(p0)
        self.model.zero_grad(set_to_none=True)


def dynamic_logprobs(
    model: torch.nn.Module,
    batches: Iterable[Any],
    total: int,
    lr: float,
    decay: float = 0.0,
    rms: Sequence[torch.Tensor] | None = None,
    eps: float = 1e-3,
    scores: SegmentScores = segment_loss,
) -> np.ndarray:
    """ln p(y_t) of every target of ``batches`` (a batch-1 BPTT stream, or with
    ``scores=window_scores`` a feed-forward LM's windows in order) in order, each scored before
    the step that learns from its segment; ``total`` real targets are kept. With ``rms`` (√MS_g
    per weight, :func:`gradient_rms`) the step is the RMS rule's. The weights are restored."""
    adapter = Adapter(model, lr, decay, rms=rms, eps=eps, scores=scores)
    state, kept = None, []
    try:
        for batch in batches:
            picked, state = adapter.segment(batch, state)
            kept.append(picked)
    finally:
        adapter.restore()
    return torch.cat(kept)[:total].double().cpu().numpy()


@torch.no_grad()
def _step(
    params: Sequence[torch.Tensor], original: Sequence[torch.Tensor], lr: float, decay: float
) -> None:
    for p, p0 in zip(params, original, strict=True):
        if decay:
            p.lerp_(p0, decay)  # + λ (θ_0 − θ_{i−1}), in place (as in _RMSRule.step)
        if p.grad is not None:
            p.add_(p.grad, alpha=-lr)


class _RMSRule:
    """The RMS rule's step (module docstring), with √MS_g + ε and the pulls λ r fixed.

    θ_{i−1} + λ r (θ_0 − θ_{i−1}) is ``lerp`` from θ_{i−1} toward θ_0 by λ r; the gradient step
    is then added to it in place. Two passes over the weights and no temporaries: forming the
    pull and the denominator anew on every segment was two thirds of dynamic evaluation's time
    for a 28M-weight model.
    """

    def __init__(self, rms: Sequence[torch.Tensor], decay: float, eps: float) -> None:
        mean = torch.cat([r.flatten() for r in rms]).mean()
        cap = 1.0 / decay if decay > 0 else float("inf")
        rates = [(r / mean).clamp(max=cap) if mean > 0 else r for r in rms]
        self.denominators = [r + eps for r in rms]  # √MS_g + ε
        self.pulls = [rate * decay for rate in rates] if decay else None  # λ r

    @torch.no_grad()
    def step(
        self, params: Sequence[torch.Tensor], original: Sequence[torch.Tensor], lr: float
    ) -> None:
        for i, (p, p0) in enumerate(zip(params, original, strict=True)):
            if self.pulls is not None:
                p.lerp_(p0, self.pulls[i])  # the pull from θ_{i−1}: the gradient came from it too
            if p.grad is not None:
                p.addcdiv_(p.grad, self.denominators[i], value=-lr)
