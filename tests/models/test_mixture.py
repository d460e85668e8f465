"""Linear interpolation of two LMs: the mixture is normalised and EM finds the best λ."""

from __future__ import annotations

import numpy as np
import pytest

from elman.models.mixture import mix_logprobs, perplexity, tune_lambda


def random_distributions(rng: np.random.Generator, n: int, v: int) -> np.ndarray:
    p = rng.random((n, v)) ** 3
    return p / p.sum(axis=1, keepdims=True)


def test_mixture_of_distributions_is_a_distribution():
    rng = np.random.default_rng(0)
    pa, pb = random_distributions(rng, 5, 7), random_distributions(rng, 5, 7)
    for lam in (0.0, 0.3, 1.0):
        # every word of the vocabulary as the "next token": the mixed probabilities sum to 1
        mixed = [np.exp(mix_logprobs(np.log(pa[:, w]), np.log(pb[:, w]), lam)) for w in range(7)]
        np.testing.assert_allclose(np.sum(mixed, axis=0), 1.0, atol=1e-12)
        np.testing.assert_allclose(mixed[2], lam * pa[:, 2] + (1 - lam) * pb[:, 2], atol=1e-14)


def test_em_lambda_maximises_held_out_likelihood():
    rng = np.random.default_rng(1)
    a = np.log(rng.uniform(0.01, 1.0, 2000))
    b = np.log(rng.uniform(0.01, 1.0, 2000))
    lam = tune_lambda(a, b)
    grid = np.linspace(0.0, 1.0, 2001)
    best = grid[np.argmax([mix_logprobs(a, b, g).sum() for g in grid])]
    assert abs(lam - best) < 1e-3
    assert mix_logprobs(a, b, lam).sum() >= max(a.sum(), b.sum())


def test_identical_models_mix_to_themselves_and_a_better_model_gets_more_weight():
    rng = np.random.default_rng(2)
    a = np.log(rng.uniform(0.05, 1.0, 500))
    np.testing.assert_allclose(mix_logprobs(a, a, 0.37), a, atol=1e-12)
    worse = a - 1.0  # e times less likely on every token
    assert tune_lambda(a, worse) > 0.99
    assert perplexity(worse) == pytest.approx(np.e * perplexity(a))


def test_bad_arguments():
    with pytest.raises(ValueError, match="lambda"):
        mix_logprobs(np.zeros(3), np.zeros(3), 1.5)
    with pytest.raises(ValueError, match="different streams"):
        mix_logprobs(np.zeros(3), np.zeros(4), 0.5)
