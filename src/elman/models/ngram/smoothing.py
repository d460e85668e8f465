"""Smoothing: from n-gram counts to interpolated probabilities and back-off weights.

Every method here has the same interpolated form (Chen & Goodman 1998, eq. 1 and
section 2.8), for a word w after a context h = w_{i-n+1} .. w_{i-1} whose shorter
context is h' = w_{i-n+2} .. w_{i-1}:

    p_n(w | h) = alpha(h w) + gamma(h) * p_{n-1}(w | h')
    p_1(w)     = alpha(w)   + gamma     * 1 / |V'|

where alpha(h w) = 0 for an n-gram never seen, sum_w alpha(h w) + gamma(h) = 1, and
V' is the vocabulary without <s> (which is never predicted), so every p_n sums to 1
over V'.  Because alpha vanishes on unseen n-grams, the model is exactly an ARPA
back-off model: the listed n-grams carry p_n(w | h), and gamma(h) is the back-off
weight of the context h.  With a(.) the count each method uses and A(h) = sum_w a(h w):

ml    maximum likelihood, no smoothing: alpha = c(h w) / A(h), gamma(h) = 0; unseen
      n-grams after a seen context get probability 0 (log10 -99 in ARPA).
addk  add-k (Lidstone; k = 1 is Laplace): k pseudo-counts for each of the |V'| words,
      spread as the lower-order distribution:
          p_n(w | h) = (c(h w) + k |V'| p_{n-1}(w | h')) / (A(h) + k |V'|)
      so alpha = c / (A + k|V'|), gamma = k|V'| / (A + k|V'|).  For unigrams this is
      exactly (c(w) + k) / (N + k |V'|).  (The plain add-k n-gram, with a uniform
      lower order, cannot be written as an ARPA back-off model without listing all
      |V'| words after every context.)
abs   absolute discounting (Ney et al. 1994): a = c at every order,
          alpha = max(a - D, 0) / A(h),   gamma(h) = D N1+(h .) / A(h),
          D = n_1 / (n_1 + 2 n_2)   (n_k: number of n-grams of the order with a = k)
kn    interpolated Kneser-Ney: absolute discounting on the adjusted counts a(.)
      of :func:`~elman.models.ngram.counts.adjusted_counts` (continuation counts
      N1+(. h w) below the highest order).
mkn   interpolated modified Kneser-Ney (Chen & Goodman eq. 26), three discounts
      per order from the counts-of-counts of a(.):
          Y = n_1 / (n_1 + 2 n_2),   D_k = k - (k + 1) Y n_{k+1} / n_k   (k = 1, 2, 3)
          alpha = (a - D(a)) / A(h),  D(a) = D_min(a, 3)
          gamma(h) = (D_1 N_1(h .) + D_2 N_2(h .) + D_3 N_3+(h .)) / A(h)
      This is KenLM's lmplz.  When a discount is undefined (some n_k = 0) or out of
      range (D_k outside [0, k]), lmplz stops with BadDiscountException; here a
      warning is issued and the fallback D = (0.5, 1, 1.5) is used for that order.

A context with no continuation (A(h) = 0, e.g. one ending in </s>) gets gamma = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram.counts import (
    BOS_ID,
    OrderCounts,
    adjusted_counts,
    count_of_counts,
    quiet,
    warn,
)

SMOOTHINGS = ("ml", "addk", "abs", "kn", "mkn")  # the keys of METHODS, below
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback defaults
LOG10_ZERO = -99.0  # ARPA's log10 of probability zero


def check_smoothing(name: str) -> None:
    """Raise ElmanError naming the valid methods when ``name`` is not one of them."""
    if name not in SMOOTHINGS:
        raise ElmanError(
            f"unknown smoothing {name!r}; choose one of {', '.join(SMOOTHINGS)} "
            "(ml: maximum likelihood, addk: add-k, abs: absolute discounting, "
            "kn: Kneser-Ney, mkn: modified Kneser-Ney)"
        )


# --- discounts ----------------------------------------------------------------------
def single_discount(counts: np.ndarray, order: int) -> float:
    """D = n_1 / (n_1 + 2 n_2) (Ney et al. 1994); the fallback 0.5 when not in (0, 1]."""
    n = count_of_counts(counts)
    if n[1] > 0:
        return float(n[1] / (n[1] + 2.0 * n[2]))
    fallback = FALLBACK_DISCOUNTS[0]
    warn(
        f"{order}-grams: no {order}-gram was seen exactly once, so the discount "
        f"n1/(n1+2 n2) is undefined (small or artificial corpus?); using D={fallback}"
    )
    return fallback


def modified_discounts(counts: np.ndarray, order: int) -> tuple[float, float, float]:
    """(D_1, D_2, D_3+) of Chen & Goodman eq. 26, or the fallback (with a warning)."""
    n = count_of_counts(counts)
    problem = None
    missing = [k for k in (1, 2, 3) if n[k] == 0]
    if missing:
        k = missing[0]
        problem = f"no {order}-gram has adjusted count {k}"
    else:
        y = n[1] / (n[1] + 2.0 * n[2])
        d = tuple(float(k - (k + 1) * y * n[k + 1] / n[k]) for k in (1, 2, 3))
        bad = [k for k in (1, 2, 3) if not 0.0 <= d[k - 1] <= k]
        if not bad:
            return d  # type: ignore[return-value]
        problem = f"discount D{bad[0]}={d[bad[0] - 1]:.4g} is outside [0, {bad[0]}]"
    fallback = FALLBACK_DISCOUNTS
    warn(
        f"{order}-grams: cannot estimate modified Kneser-Ney discounts ({problem}; "
        f"small or artificial corpus?); using D1={fallback[0]} D2={fallback[1]} "
        f"D3+={fallback[2]}"
    )
    return fallback


# --- alpha and gamma for one order --------------------------------------------------
def _context_totals(t: OrderCounts, a: np.ndarray, n_contexts: int) -> np.ndarray:
    """A(h) = sum_w a(h w), shape (n_contexts,)."""
    return np.bincount(t.context, weights=a, minlength=n_contexts)


def _safe_divide(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(len(den), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _discounted(
    t: OrderCounts, a: np.ndarray, d_of_a: np.ndarray, n_contexts: int, keep: np.ndarray | None
):
    """alpha = (a - D(a)) / A(h),  gamma(h) = sum_w D(a(h w)) / A(h).

    With pruning (``keep``: the surviving n-grams), A(h) still sums over every n-gram of the
    context, a pruned n-gram gives gamma its whole count a(h w) instead of D(a(h w)), and
    alpha is only used for the survivors: sum_w alpha + gamma stays 1 (KenLM lmplz).
    """
    total = _context_totals(t, a, n_contexts)
    alpha = (a - d_of_a) / total[t.context]
    given = d_of_a if keep is None else np.where(keep, d_of_a, a)
    mass = np.bincount(t.context, weights=given, minlength=n_contexts)
    return alpha, _safe_divide(mass, total, 1.0)


# Each estimator maps the counts a(.) of one order n to (alpha per n-gram, gamma per
# context, discounts used); k is add-k's pseudo-count, V the vocabulary size, keep the n-grams
# that survive pruning (None: all; only the discounting methods prune, see PRUNABLE).
def _ml(
    t: OrderCounts,
    a: np.ndarray,
    n: int,
    n_contexts: int,
    k: float,
    V: int,
    keep: np.ndarray | None = None,
):
    total = _context_totals(t, a, n_contexts)
    return a / np.maximum(total[t.context], 1), np.where(total > 0, 0.0, 1.0), ()


def _add_k(
    t: OrderCounts,
    a: np.ndarray,
    n: int,
    n_contexts: int,
    k: float,
    V: int,
    keep: np.ndarray | None = None,
):
    extra = k * (V - 1)  # k pseudo-counts for each word of V'
    total = _context_totals(t, a, n_contexts)
    return a / (total[t.context] + extra), extra / (total + extra), ()


def _absolute(
    t: OrderCounts,
    a: np.ndarray,
    n: int,
    n_contexts: int,
    k: float,
    V: int,
    keep: np.ndarray | None = None,
):
    d = single_discount(a, n)
    alpha, gamma = _discounted(t, a, np.where(a > 0, d, 0.0), n_contexts, keep)
    return alpha, gamma, (d,)


def _modified(
    t: OrderCounts,
    a: np.ndarray,
    n: int,
    n_contexts: int,
    k: float,
    V: int,
    keep: np.ndarray | None = None,
):
    d = modified_discounts(a, n)
    d_of_a = np.array((0.0, *d))[np.minimum(a, 3)]
    alpha, gamma = _discounted(t, a, d_of_a, n_contexts, keep)
    return alpha, gamma, d


# name -> (estimator, whether it reads KenLM's adjusted counts instead of raw counts)
METHODS = {
    "ml": (_ml, False),
    "addk": (_add_k, False),
    "abs": (_absolute, False),
    "kn": (_absolute, True),
    "mkn": (_modified, True),
}
# The methods that can prune (KenLM's lmplz --prune and --limit_vocab_file): Kneser-Ney's.
PRUNABLE = ("kn", "mkn")


def _log10(p: np.ndarray) -> np.ndarray:
    """log10 of probabilities or interpolation weights, in [-99, 0]: the sums alpha +
    gamma * lower can exceed 1 by a rounding error, and a positive log10 in an ARPA file is
    an error to KenLM and to our reader."""
    with np.errstate(divide="ignore"):
        return np.clip(np.log10(p), LOG10_ZERO, 0.0)


def estimate(
    tables: list[OrderCounts],
    *,
    method: str,
    k: float,
    vocab_size: int,
    phase: Callable[[str], None] = quiet,
    keep: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, ...]]]:
    """log10 p_n of every listed n-gram and log10 gamma of every context, per order.

    Returns (logp, logbo, discounts): logp[n-1] has one entry per n-gram of order n;
    logbo[n-1] one per n-gram of order n (its weight as a context), for n < N.
    ``phase`` is told which order is being smoothed.

    ``keep`` (from :func:`~elman.models.ngram.counts.prune_mask`; ``kn`` and ``mkn`` only)
    prunes as KenLM's lmplz does: the counts, adjusted counts and discounts are those of the
    whole corpus, the pruned n-grams' counts go to their context's gamma (see
    :func:`_discounted`), and the unigrams are interpolated with the uniform distribution over
    the surviving words.  Every n-gram still gets a value; the caller keeps the survivors'
    (the survivors' suffixes survive, so their lower-order values are the pruned model's).
    """
    check_smoothing(method)
    if keep is not None and method not in PRUNABLE:
        raise ElmanError(f"pruning needs Kneser-Ney smoothing ({' or '.join(PRUNABLE)})")
    estimator, continuation = METHODS[method]
    counts = adjusted_counts(tables) if continuation else [t.count for t in tables]
    kept_words = vocab_size if keep is None else int(keep[0].sum())
    uniform = np.full(vocab_size, 1.0 / (kept_words - 1))  # over V' (without <s>)
    uniform[BOS_ID] = 0.0
    lower = uniform
    logp, logbo, discounts = [], [], []
    for n, t in enumerate(tables, start=1):
        phase(f"smoothing {n}-grams")
        n_contexts = 1 if n == 1 else len(tables[n - 2])
        kept = None if keep is None else keep[n - 1]
        alpha, gamma, d = estimator(t, counts[n - 1], n, n_contexts, k, vocab_size, kept)
        below = lower if n == 1 else lower[t.suffix]
        p = alpha + gamma[t.context] * below
        if n > 1:
            logbo.append(_log10(gamma))
        logp.append(_log10(p))
        discounts.append(d)
        lower = p
    return logp, logbo, discounts
