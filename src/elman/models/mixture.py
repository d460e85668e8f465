"""Linear interpolation of two language models, token by token.

    P(w_t | h_t) = λ · P_a(w_t | h_t) + (1 − λ) · P_b(w_t | h_t)

Both models must predict the same token stream under the same convention (elman's: every token of
the split, ``<eos>``/``</s>`` included, each once), so the mixture is a proper distribution and its
perplexity comparable. λ is tuned on held-out data by expectation-maximisation, which increases the
held-out likelihood at every iteration (the classic way to mix an RNN LM with a KN n-gram,
Mikolov 2012). NumPy only.
"""

from __future__ import annotations

import math

import numpy as np


def mix_logprobs(logp_a: np.ndarray, logp_b: np.ndarray, lam: float) -> np.ndarray:
    """Natural-log probabilities of the mixture, computed stably with logaddexp."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    a, b = np.asarray(logp_a, np.float64), np.asarray(logp_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two models scored different streams: {a.shape} vs {b.shape}")
    if lam == 1.0:
        return a.copy()
    if lam == 0.0:
        return b.copy()
    return np.logaddexp(math.log(lam) + a, math.log1p(-lam) + b)


def tune_lambda(
    logp_a: np.ndarray, logp_b: np.ndarray, *, iters: int = 200, tol: float = 1e-9
) -> float:
    """The λ maximising the held-out likelihood of the mixture (EM from λ = 0.5).

    E-step: each token's posterior that model a produced it, r_t = λ P_a / (λ P_a + (1−λ) P_b);
    M-step: λ ← mean_t r_t.
    """
    a, b = np.asarray(logp_a, np.float64), np.asarray(logp_b, np.float64)
    lam = 0.5
    for _ in range(iters):
        mixed = mix_logprobs(a, b, lam)
        new = float(np.mean(np.exp(math.log(lam) + a - mixed))) if lam > 0 else 0.0
        if abs(new - lam) < tol:
            return new
        lam = new
    return lam


def perplexity(logp: np.ndarray) -> float:
    return float(math.exp(-float(np.mean(logp))))


def mix_many(logps: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Natural-log probabilities of the mixture Σ_i w_i P_i of any number of models (the weights
    sum to 1); a model of weight 0 takes no part, so its -inf scores cannot spoil the sum."""
    if len(logps) != len(weights) or not logps:
        raise ValueError("one weight per model, and at least one model")
    if len(logps) == 2:  # the two-model formula of elman eval --mix, bit for bit
        return mix_logprobs(logps[0], logps[1], weights[0])
    pairs = zip(weights, logps, strict=True)
    stacked = np.stack([math.log(w) + np.asarray(lp, np.float64) for w, lp in pairs if w > 0])
    return np.logaddexp.reduce(stacked, axis=0)  # (K, N) -> (N,)


def tune_weights(logps: list[np.ndarray], *, iters: int = 200, tol: float = 1e-9) -> list[float]:
    """The weights maximising the held-out likelihood of a mixture of K models: EM from equal
    weights, :func:`tune_lambda` generalised (w_i ← mean_t of model i's posterior); two models
    give exactly ``tune_lambda``'s λ and 1 − λ."""
    if len(logps) == 2:
        lam = tune_lambda(logps[0], logps[1], iters=iters, tol=tol)
        return [lam, 1.0 - lam]
    stacked = np.stack([np.asarray(lp, np.float64) for lp in logps])  # (K, N)
    weights = np.full(len(logps), 1.0 / len(logps))
    for _ in range(iters):
        with np.errstate(divide="ignore"):  # a weight that reached 0 stays 0
            joint = np.log(weights)[:, None] + stacked  # (K, N)
        posterior = np.exp(joint - np.logaddexp.reduce(joint, axis=0))  # (K, N)
        new = posterior.mean(axis=1)
        if np.abs(new - weights).max() < tol:
            return [float(w) for w in new]
        weights = new
    return [float(w) for w in weights]
