"""Entropy-based pruning of a back-off n-gram model (Stolcke 1998, "Entropy-based pruning
of backoff language models"; SRILM's ``ngram -prune THRESHOLD``).

Removing one listed n-gram hw (order n >= 2) alone changes only the distribution after h:
w then backs off, p′(w | h) = b′(h) p(w | h′), and h gets the back-off weight that keeps
its distribution summing to one,

    b′(h) = (1 − Σ_{v ≠ w listed after h} p(v | h)) / (1 − Σ_{v ≠ w listed after h} p(v | h′)).

The relative entropy of the model before and after, D(p ‖ p′) = Σ_h P(h) Σ_v p(v | h)
log(p(v | h) / p′(v | h)), is then (natural log)

    D = −P(h) { p(w | h) [log p′(w | h) − log p(w | h)]
                + (Σ_{v not listed after h} p(v | h)) [log b′(h) − log b(h)] },

and the n-gram is pruned when the model's perplexity would grow by less than the
threshold, exp(D) − 1 < threshold (SRILM's ``perpChange < threshold``; a threshold of 0
prunes nothing).  As in SRILM (``Ngram::pruneProbs``):

- P(h) is the model's own probability of the history by the chain rule, P(h_1 … h_m) =
  p(h_1) p(h_2 | h_1) … p(h_m | h_1 … h_{m−1}); for a history that starts with <s>, whose
  unigram probability is 0, p(</s>) stands for p(<s>) (SRILM's ``computeContextProb``:
  the marginal probability of a sentence boundary).  Each factor is a listed n-gram's own
  probability, since every prefix of a listed history is listed.
- Every n-gram's D is computed on the unpruned model (SRILM prunes from the highest order
  down and recomputes the back-off weights only at the end, so the lower orders it reads
  are still whole), each n-gram as if removed alone.
- An n-gram that is the context of a surviving longer n-gram is kept (``findBOW``): the
  tables key an n-gram by its context's row.  Unigrams are never pruned.
- Afterwards the back-off weight of every context whose listed words or whose lower-order
  probabilities of them changed is recomputed from the pruned model, from the lowest order
  up (SRILM's ``recomputeBOWs``); a context left without listed words gets b = 1.  The
  other weights are kept as they were, so a threshold that prunes nothing gives back the
  model bit for bit.

NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram.backoff import (
    backoff_from_mass,
    listed_mass,
    ngram_words,
    score_ngrams,
)
from elman.models.ngram.counts import quiet
from elman.models.ngram.model import LN10, NgramLM


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float, finite and >= 0 (else one ElmanError line)."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ElmanError(f"threshold must be a number >= 0, got {threshold!r}") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise ElmanError(
            f"threshold must be a finite number >= 0 (the largest relative perplexity growth "
            f"an n-gram may cause, e.g. 1e-7), got {threshold!r}"
        )
    return value


def history_log10probs(lm: NgramLM) -> list[np.ndarray]:
    """Per order m = 1 … N−1, log10 P(h) of each listed m-gram h by the chain rule, with
    p(</s>) for a first word <s> (module docstring), shape (M_m,)."""
    first = lm.logp[0].copy()  # (V,)
    first[lm.bos_id] = lm.logp[0][lm.eos_id]
    out = [first]
    for m in range(2, lm.order):
        # P(h_1 … h_m) = P(h_1 … h_{m−1}) p(h_m | h_1 … h_{m−1}), the m-gram's own p
        out.append(out[-1][lm.keys[m - 1] // lm.vocab_size] + lm.logp[m - 1])
    return out


def relative_entropies(
    lm: NgramLM, words: list[np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per order n = 2 … N: D (natural log, module docstring) of removing each listed n-gram
    alone, shape (M_n,), and log10 p(w | h′) of each, its lower-order estimate. ``words``:
    :func:`ngram_words` of ``lm``, when the caller has them."""
    V = lm.vocab_size
    words = ngram_words(lm.keys[1:], V) if words is None else words
    log_ph = history_log10probs(lm)
    entropies, lowers = [], []
    for n in range(2, lm.order + 1):
        h = lm.keys[n - 1] // V  # (M_n,) the context's row in the (n−1)-gram table
        rows = len(lm.logp[n - 2])
        logp = lm.logp[n - 1]
        logq = score_ngrams(lm, words[n - 1][:, 1:])  # log10 p(w | h′)
        left = 1.0 - listed_mass(h, logp, rows)  # (rows,) Σ_{v not listed after h} p(v | h)
        den = 1.0 - listed_mass(h, logq, rows)
        p, q = 10.0**logp, 10.0**logq
        with np.errstate(divide="ignore", invalid="ignore"):
            new_bo = np.log(left[h] + p) - np.log(den[h] + q)  # log b′(h)
            d = -(10.0 ** log_ph[n - 2][h]) * (
                p * ((logq - logp) * LN10 + new_bo) + left[h] * (new_bo - lm.logbo[n - 2][h] * LN10)
            )
        d[~np.isfinite(d)] = np.inf  # a context whose mass is used up: never pruned
        entropies.append(d)
        lowers.append(logq)
    return entropies, lowers


def prune_entropy(lm: NgramLM, threshold: float, phase: Callable[[str], None] = quiet) -> NgramLM:
    """``lm`` without the n-grams whose removal alone grows its perplexity by less than
    ``threshold`` (relative: exp(D) − 1 < threshold), back-off weights recomputed (module
    docstring).  ``threshold`` 0 prunes nothing."""
    threshold = check_threshold(threshold)
    if threshold == 0.0 or lm.order == 1:
        return NgramLM(lm.vocab, [k.copy() for k in lm.keys[1:]], list(lm.logp), list(lm.logbo))
    phase("relative entropy of each n-gram")
    V = lm.vocab_size
    words = ngram_words(lm.keys[1:], V)
    entropies, lowers = relative_entropies(lm, words)
    keep = _survivors(lm, [np.expm1(d) >= threshold for d in entropies])
    phase("rebuilding the tables")
    keys, logp = [], [lm.logp[0]]
    remap = np.arange(V, dtype=np.int64)  # old row -> new row, order n−1
    for n in range(2, lm.order + 1):
        old = lm.keys[n - 1][keep[n - 1]]
        keys.append(remap[old // V] * V + old % V)  # still sorted: remap is increasing
        logp.append(lm.logp[n - 1][keep[n - 1]])
        remap = np.cumsum(keep[n - 1]) - 1
    logbo: list[np.ndarray] = []
    for n in range(2, lm.order + 1):
        phase(f"back-off weights of the {n - 1}-grams")
        lower = NgramLM(lm.vocab, keys[: n - 2], logp[: n - 1], logbo)
        kept = keep[n - 1]
        contexts = keys[n - 2] // V
        rows = len(logp[n - 2])
        logq = score_ngrams(lower, words[n - 1][kept][:, 1:])
        old_rows = len(lm.logp[n - 2])
        lost = np.bincount(lm.keys[n - 1][~kept] // V, minlength=old_rows) > 0
        changed = lost[keep[n - 2]] | (
            np.bincount(contexts, weights=logq != lowers[n - 2][kept], minlength=rows) > 0
        )
        bo = lm.logbo[n - 2][keep[n - 2]].copy()
        fresh = backoff_from_mass(
            listed_mass(contexts, logp[n - 1], rows), listed_mass(contexts, logq, rows)
        )
        bo[changed] = fresh[changed]
        logbo.append(bo)
    return NgramLM(lm.vocab, keys, logp, logbo)


def _survivors(lm: NgramLM, above: list[np.ndarray]) -> list[np.ndarray]:
    """Per order 1 … N, which rows stay: all unigrams; at order n >= 2 the n-grams whose D is
    at or above the threshold (``above``, orders 2 … N) and the contexts of surviving
    (n+1)-grams, from the highest order down."""
    keep: list[np.ndarray] = [np.ones(lm.vocab_size, dtype=bool)] * lm.order
    for n in range(lm.order, 1, -1):
        k = above[n - 2].copy()
        if n < lm.order:
            k[lm.keys[n][keep[n]] // lm.vocab_size] = True  # a context that is still needed
        keep[n - 1] = k
    return keep
