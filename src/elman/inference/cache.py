"""The neural cache (Grave et al. 2017, "Improving neural language models with a continuous cache").

A language model's recent hidden states h_i, each stored with the word y_i that followed it, form
a cache; the cache's distribution for the next word after h_t is

    p_cache(w | h_t) = Σ_i 1{y_i = w} exp(θ h_t · h_i) / Σ_i exp(θ h_t · h_i),   i = t−N … t−1,

and the model is interpolated with it, p(w | h_t) = (1 − λ) p_model(w | h_t) + λ p_cache(w | h_t).
N is the cache size, θ the flatness of the match. At the first position the cache is empty and
p_cache = 0. Only p_cache(y_t | h_t), the cache's probability of the word that came, is needed to
score a text, so no V-sized vector is built: :func:`cache_probs` computes it for a whole stream,
a block of positions at a time, for several θ at once (their tuning on held-out data needs one
pass of the model). The grids of θ and λ tried by :func:`tune_cache` are the paper's kind.

The states may come from the trained model or from the model as dynamic evaluation adapts it
(:mod:`elman.inference.dynamic`): :class:`StateRecorder` keeps each segment's h_t as the adapted
weights produce them, so the cache and the adaptation combine in one pass over the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class CacheStates:
    """One pass of a language model over a text, what its cache needs: ln p_model(y_t) of every
    token (T,), the hidden states h_t that predicted them (T, H) and the words y_t (T,)."""

    model_logp: np.ndarray
    states: Tensor
    targets: Tensor

    def probs(self, size: int, thetas: Sequence[float]) -> np.ndarray:
        """p_cache(y_t | h_t) for each θ, (len(thetas), T) (:func:`cache_probs`)."""
        return cache_probs(self.states, self.targets, size, thetas).double().numpy()


class StateRecorder:
    """A dynamic evaluation segment scorer (``elman.inference.dynamic.SegmentScores``) for a
    recurrent LM with ``hidden`` and ``target_logprobs`` (``elman.models.rnnlm.RNNLM``) that
    also keeps the h_t and y_t of every real target, in order, for the cache."""

    def __init__(self) -> None:
        self.states: list[Tensor] = []
        self.targets: list[Tensor] = []

    def __call__(self, model: Any, batch: Any, state: Any) -> tuple[Tensor, Tensor, Any]:
        h, state = model.hidden(batch.inputs, state)  # (T, 1, H)
        picked = model.target_logprobs(h, batch.targets)[:, 0]  # (T,)
        real = batch.targets[:, 0] >= 0
        self.states.append(h[:, 0][real].detach().float().cpu())
        self.targets.append(batch.targets[:, 0][real].cpu())
        return picked, real, state

    def recorded(self, model_logp: np.ndarray) -> CacheStates:
        """The pass's :class:`CacheStates`, given the scores dynamic evaluation kept."""
        n = len(model_logp)
        return CacheStates(model_logp, torch.cat(self.states)[:n], torch.cat(self.targets)[:n])


THETAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
LAMBDAS = tuple(round(0.05 * k, 2) for k in range(0, 17))  # 0 … 0.8


@torch.no_grad()
def cache_probs(
    h: Tensor, targets: Tensor, size: int, thetas: Sequence[float], block: int = 512
) -> Tensor:
    """p_cache(y_t | h_t) of every position t, for each θ: shape (len(thetas), T).

    ``h``: (T, H) hidden states in stream order; ``targets``: (T,) the word that followed each.
    """
    T = h.shape[0]
    h = h.float()
    out = torch.zeros(len(thetas), T)
    for start in range(0, T, block):
        end = min(start + block, T)
        lo = max(0, start - size)
        dots = h[start:end] @ h[lo:end].T  # (b, window): h_t · h_i
        t = torch.arange(start, end).unsqueeze(1)
        i = torch.arange(lo, end).unsqueeze(0)
        usable = (i < t) & (i >= t - size)  # the N states before t
        same = (targets[lo:end].unsqueeze(0) == targets[start:end].unsqueeze(1)) & usable
        for k, theta in enumerate(thetas):
            scores = (theta * dots).masked_fill(~usable, -math.inf)
            weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # t = 0: an empty cache
            out[k, start:end] = (weights * same).sum(dim=1)
    return out


def mix_cache(model_logp: np.ndarray, cache_p: np.ndarray, lam: float) -> np.ndarray:
    """ln((1 − λ) p_model + λ p_cache), per position."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log1p(-lam) + model_logp, np.log(lam) + np.log(cache_p))


@dataclass(frozen=True)
class CacheSetting:
    size: int
    theta: float
    lam: float
    ppl: float


def tune_cache(
    model_logp: np.ndarray,
    cache_p: np.ndarray,
    size: int,
    thetas: Sequence[float] = THETAS,
    lambdas: Sequence[float] = LAMBDAS,
) -> CacheSetting:
    """The (θ, λ) of the grids with the lowest perplexity (``cache_p``: one row per θ)."""
    best = CacheSetting(size, thetas[0], 0.0, math.exp(-float(np.mean(model_logp))))
    for k, theta in enumerate(thetas):
        for lam in lambdas:
            if lam == 0.0:
                continue
            ppl = math.exp(-float(np.mean(mix_cache(model_logp, cache_p[k], lam))))
            if ppl < best.ppl:
                best = CacheSetting(size, theta, lam, ppl)
    return best
