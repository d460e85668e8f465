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
      of :func:`~elman.models.ngram.counts.adjusted_count` (continuation counts
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

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram.counts import (
    BOS_ID,
    OrderCounts,
    adjusted_count,
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
# name -> whether the method reads KenLM's adjusted counts a(.) instead of the raw counts
METHODS = {"ml": False, "addk": False, "abs": False, "kn": True, "mkn": True}
# The methods that can prune (KenLM's lmplz --prune and --limit_vocab_file): Kneser-Ney's.
PRUNABLE = ("kn", "mkn")
DISCOUNTING = ("abs", "kn", "mkn")
BLOCK = 1 << 20  # n-grams smoothed at a time: the float64 temporaries stay a few MB


def _discounts(method: str, a: np.ndarray, n: int) -> tuple[float, ...]:
    if method == "mkn":
        return modified_discounts(a, n)
    if method in DISCOUNTING:
        return (single_discount(a, n),)
    return ()


def _discount_of(method: str, d: tuple[float, ...], a: np.ndarray) -> np.ndarray:
    """D(a) for each count: D_min(a, 3) (mkn), else D for a > 0."""
    if method == "mkn":
        return np.array((0.0, *d))[np.minimum(a, 3)]
    return np.where(a > 0, d[0], 0.0)


def _blocks(context: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of about ``size`` rows that never split a context (the rows
    are sorted by context): per-context sums over one range are whole, added in row order as
    one ``np.bincount`` over all rows adds them, so the results are the same bit for bit."""
    m = len(context)
    cuts = np.searchsorted(context, context[np.arange(size, m, size)], side="left")
    edges = np.unique(np.concatenate([[0], cuts, [m]])).tolist()
    return list(zip(edges[:-1], edges[1:], strict=True))


def _context_sums(method, d, t, a, n_contexts, keep, blocks) -> tuple[np.ndarray, np.ndarray]:
    """A(h) = sum_w a(h w) and, for the discounting methods, the mass sum_w D(a(h w)) that
    gamma(h) gives the lower order (a pruned n-gram gives its whole a(h w); KenLM lmplz)."""
    total = np.zeros(n_contexts)
    mass = np.zeros(n_contexts if method in DISCOUNTING else 0)
    for start, stop in blocks:
        c0, c1 = int(t.context[start]), int(t.context[stop - 1]) + 1
        local = t.context[start:stop] - c0
        total[c0:c1] = np.bincount(local, weights=a[start:stop], minlength=c1 - c0)
        if method in DISCOUNTING:
            given = _discount_of(method, d, a[start:stop])
            if keep is not None:
                given = np.where(keep[start:stop], given, a[start:stop])
            mass[c0:c1] = np.bincount(local, weights=given, minlength=c1 - c0)
    return total, mass


def _safe_divide(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(len(den), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _gamma(method: str, total: np.ndarray, mass: np.ndarray, extra: float) -> np.ndarray:
    if method == "ml":
        return np.where(total > 0, 0.0, 1.0)
    if method == "addk":
        return extra / (total + extra)
    return _safe_divide(mass, total, 1.0)


def _alpha(method, d, a: np.ndarray, total: np.ndarray, extra: float) -> np.ndarray:
    """alpha(h w) for counts ``a`` whose contexts' totals A(h) are ``total``."""
    if method == "ml":
        return a / np.maximum(total, 1)
    if method == "addk":
        return a / (total + extra)
    return (a - _discount_of(method, d, a)) / total


def _log10(p: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log10 of probabilities or interpolation weights, in [-99, 0] (into ``out``, which may
    be ``p``): the sums alpha + gamma * lower can exceed 1 by a rounding error, and a
    positive log10 in an ARPA file is an error to KenLM and to our reader."""
    with np.errstate(divide="ignore"):
        logs = np.log10(p, out=out)
    return np.clip(logs, LOG10_ZERO, 0.0, out=logs)


@dataclass
class Smoothed:
    """One order n of an estimated model, as :func:`smooth` yields it.

    Attributes:
        n: the order.
        context, word: shape (M,), the n-grams' context rows and last words (the table's).
        logp: shape (M,), log10 p_n(w | h) of each listed n-gram.
        logbo: log10 gamma(h) of every (n-1)-gram h, the back-off weights of order n-1
            (None for n = 1).
        discounts: those the method used at order n (() for ml and addk).
    """

    n: int
    context: np.ndarray
    word: np.ndarray
    logp: np.ndarray
    logbo: np.ndarray | None
    discounts: tuple[float, ...]


def smooth(
    tables: list[OrderCounts],
    *,
    method: str,
    k: float,
    vocab_size: int,
    phase: Callable[[str], None] = quiet,
    keep: list[np.ndarray] | None = None,
    consume: bool = False,
) -> Iterator[Smoothed]:
    """Each order's log10 p_n and the back-off weights of the order below, from order 1 up.

    An order's values are computed :data:`BLOCK` n-grams at a time; only p_n (linear) is kept
    for the next order.  With ``consume`` each table is taken out of ``tables`` once smoothed,
    so that a caller that writes each order as it comes holds at most two orders' tables.
    ``keep`` prunes (see :func:`estimate`).
    """
    check_smoothing(method)
    if keep is not None and method not in PRUNABLE:
        raise ElmanError(f"pruning needs Kneser-Ney smoothing ({' or '.join(PRUNABLE)})")
    pending = tables if consume else list(tables)
    N, extra = len(pending), k * (vocab_size - 1)  # add-k: k pseudo-counts per word of V'
    kept_words = vocab_size if keep is None else int(keep[0].sum())
    uniform = np.full(vocab_size, 1.0 / (kept_words - 1))  # over V' (without <s>)
    uniform[BOS_ID] = 0.0
    lower: np.ndarray | None = uniform  # p_{n-1}, read through each n-gram's suffix
    n_contexts = 1  # the unigrams' one (empty) context
    for n in range(1, N + 1):
        phase(f"smoothing {n}-grams")
        t = pending.pop(0)
        a = adjusted_count(t, pending[0] if pending else None) if METHODS[method] else t.count
        kept = None if keep is None else keep[n - 1]
        d = _discounts(method, a, n)
        blocks = _blocks(t.context, BLOCK)
        total, mass = _context_sums(method, d, t, a, n_contexts, kept, blocks)
        gamma = _gamma(method, total, mass, extra)
        del mass
        logp = np.empty(len(t), dtype=np.float64)
        p = np.empty(len(t), dtype=np.float64) if n < N else None
        below = t.word if n == 1 else t.suffix  # the row of w, or of h' w, one order down
        assert lower is not None  # p_{n-1} is kept for every order below N
        for start, stop in blocks:
            ctx = t.context[start:stop]
            alpha = _alpha(method, d, a[start:stop], total[ctx], extra)
            part = alpha + gamma[ctx] * lower[below[start:stop]]
            logp[start:stop] = _log10(part)
            if p is not None:
                p[start:stop] = part
        # Only what the caller and the next order read stays: the context rows and words,
        # log10 p, log10 gamma (computed in place) and p.  The table's counts go now.
        found = Smoothed(n, t.context, t.word, logp, None if n == 1 else _log10(gamma, gamma), d)
        n_contexts, lower = len(t), p
        del a, total, gamma, t, below, logp, p
        yield found
        del found


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
    :func:`_context_sums`), and the unigrams are interpolated with the uniform distribution
    over the surviving words.  Every n-gram still gets a value; the caller keeps the
    survivors' (the survivors' suffixes survive, so their lower-order values are the pruned
    model's).
    """
    logp, logbo, discounts = [], [], []
    for order in smooth(tables, method=method, k=k, vocab_size=vocab_size, phase=phase, keep=keep):
        logp.append(order.logp)
        if order.logbo is not None:
            logbo.append(order.logbo)
        discounts.append(order.discounts)
    return logp, logbo, discounts
