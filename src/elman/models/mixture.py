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
