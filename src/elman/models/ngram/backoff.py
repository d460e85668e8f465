"""What a back-off model's tables give, order by order: each listed n-gram's words, its
probability under any model, and the back-off weights that make each context sum to one.

Shared by :mod:`~elman.models.ngram.merge` (the merged model's weights) and
:mod:`~elman.models.ngram.entropy` (entropy-based pruning).  For a listed context h, with
h′ = h without its first word,

    b(h) = (1 − Σ_{w : hw listed} P(w | h)) / (1 − Σ_{w : hw listed} P(w | h′)).

NumPy only.
"""

from __future__ import annotations

import numpy as np

from elman.models.ngram.counts import Encoded
from elman.models.ngram.model import NgramLM

# log10 of a probability that is 0 (a back-off weight whose mass is used up), as ARPA writers
# do for <s> and KenLM for impossible events.
LOG10_ZERO = -99.0


def ngram_words(keys: list[np.ndarray], V: int) -> list[np.ndarray]:
    """Per order n, the (M_n, n) word ids of the listed n-grams, from the keys of orders
    2, 3, … (``context_row * V + word``); order 1 is every word."""
    words = [np.arange(V, dtype=np.int64)[:, None]]
    for k in keys:
        words.append(np.concatenate([words[-1][k // V], (k % V)[:, None]], axis=1))
    return words


def score_ngrams(lm: NgramLM, words: np.ndarray) -> np.ndarray:
    """log10 P(w_n | w_1 … w_{n−1}) under ``lm`` for each row of ``words`` (M, n) of lm ids."""
    m, n = words.shape
    if n == 1:
        return lm.logp[0][words[:, 0]].copy()
    enc = Encoded(
        ids=words.reshape(-1),
        pos=np.tile(np.arange(n, dtype=np.int64), m),
        oov=np.zeros(m * n, dtype=bool),
        sentences=m,
    )
    # score_encoded scores positions 1 … n−1 of each row; the last one is the n-gram's.
    return lm.score_encoded(enc).reshape(m, n - 1)[:, -1]


def listed_mass(contexts: np.ndarray, log10p: np.ndarray, rows: int) -> np.ndarray:
    """Σ 10^log10p per context row, shape (rows,): the mass of the words listed after it."""
    return np.bincount(contexts, weights=10.0**log10p, minlength=rows)


def backoff_from_mass(here: np.ndarray, below: np.ndarray) -> np.ndarray:
    """log10 b(h) = log10((1 − here) / (1 − below)) per context, ``here`` and ``below`` the
    listed words' mass at h and at h′ (:func:`listed_mass`); b = 1 without listed words."""
    num, den = 1.0 - here, 1.0 - below
    with np.errstate(divide="ignore", invalid="ignore"):
        bo = np.log10(num / den)
    # a context whose listed words take all the mass (or more, by rounding) backs off to nothing
    bo[(num <= 0) | (den <= 0) | ~np.isfinite(bo)] = LOG10_ZERO
    bo[here == 0] = 0.0  # no listed extension: b = 1, as ARPA writers leave it
    return bo


def backoff_weights(
    lower: NgramLM, keys: np.ndarray, words: np.ndarray, logp: np.ndarray, V: int
) -> np.ndarray:
    """log10 b(h) for each listed (n−1)-gram h of ``lower`` (the model up to order n−1), from
    the listed n-grams hw: their ``keys``, (M, n) ``words`` and log10 P(w | h) ``logp``."""
    contexts = keys // V  # the row of h in the (n−1)-gram table
    rows = len(lower.logp[-1])
    here = listed_mass(contexts, logp, rows)
    below = listed_mass(contexts, score_ngrams(lower, words[:, 1:]), rows)
    return backoff_from_mass(here, below)
