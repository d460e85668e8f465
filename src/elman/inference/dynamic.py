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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from elman.train.trainer import detach_state


def dynamic_logprobs(
    model: torch.nn.Module, batches: Iterable[Any], total: int, lr: float, decay: float = 0.0
) -> np.ndarray:
    """ln p(y_t) of every target of ``batches`` (a batch-1 BPTT stream) in order, each scored
    before the step that learns from its segment; ``total`` real targets are kept."""
    params = [p for p in model.parameters() if p.requires_grad]
    original = [p.detach().clone() for p in params]
    model.eval()
    state, scores = None, []
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            with torch.set_grad_enabled(lr > 0.0):  # rate 0 (the static scores): no graph
                logits, state = model(batch.inputs, state)  # (T, 1, V)
                logp = torch.log_softmax(logits.float(), dim=-1)
                target = batch.targets.clamp(min=0).unsqueeze(-1)
                picked = logp.gather(-1, target).squeeze(-1)[:, 0]  # (T,)
            real = batch.targets[:, 0] >= 0
            scores.append(picked.detach()[real])
            if lr > 0.0 and real.any():
                (-picked[real].mean()).backward()
                _step(params, original, lr, decay)
            state = detach_state(state)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, original, strict=True):
                p.copy_(p0)
        model.zero_grad(set_to_none=True)
    return torch.cat(scores)[:total].double().cpu().numpy()


@torch.no_grad()
def _step(
    params: Sequence[torch.Tensor], original: Sequence[torch.Tensor], lr: float, decay: float
) -> None:
    for p, p0 in zip(params, original, strict=True):
        pull = (p0 - p) * decay if decay else None  # λ (θ_0 − θ_{i−1}), before the step
        if p.grad is not None:
            p.add_(p.grad, alpha=-lr)
        if pull is not None:
            p.add_(pull)
