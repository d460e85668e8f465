"""Static interpolation: K back-off n-gram models merged into one (SRILM's ``-mix-lm``).

The merged model lists the union of the models' n-grams, over the union of their
vocabularies, each with the mixture of the models' full back-off probabilities

    P(w | h) = Σ_i λ_i P_i(w | h),        Σ_i λ_i = 1,

and, for each listed context h, the back-off weight that makes P(· | h) sum to one,

    b(h) = (1 − Σ_{w : hw listed} P(w | h)) / (1 − Σ_{w : hw listed} P(w | h′)),

h′ being h without its first word and P(w | h′) the merged model's own (lower-order)
probability (Stolcke 2002, SRILM's ``ngram -mix-lm -lambda -write-lm``).  For a listed
n-gram the merged model equals the dynamic mixture exactly; for an unlisted one it backs
off to the merged lower orders, b(h) P(w | h′), where the dynamic mixture would take
Σ_i λ_i b_i(h) P_i(w | h′): the only approximation, measured by :func:`dynamic_log10probs`
beside the merged model's perplexity.

Vocabularies.  A word that model i does not know gets probability 0 from it (its <unk>
mass stays on <unk>), so that the mixture is one distribution over the union vocabulary;
a word no model knows is <unk> for all of them.  The dynamic mixture here follows the
same rule.  NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram.backoff import LOG10_ZERO, backoff_weights, ngram_words, score_ngrams
from elman.models.ngram.counts import UNK, encode, quiet
from elman.models.ngram.model import LN10, NgramLM


def check_weights(weights: Sequence[float], k: int) -> list[float]:
    """``weights`` as K floats in [0, 1] summing to 1; one weight for two models is λ_1."""
    w = [float(x) for x in weights]
    if k == 2 and len(w) == 1:
        w = [w[0], 1.0 - w[0]]
    if len(w) != k:
        raise ElmanError(f"--lambda: give one weight per model ({k}), or one for two models")
    if any(not (0.0 <= x <= 1.0) for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise ElmanError(f"--lambda {' '.join(map(str, weights))}: weights in [0, 1] summing to 1")
    return w


def union_vocab(models: Sequence[NgramLM]) -> list[str]:
    """The first model's words in its order, then each further model's new words."""
    vocab = list(models[0].vocab)
    seen = set(vocab)
    for lm in models[1:]:
        new = [w for w in lm.vocab if w not in seen]
        vocab += new
        seen.update(new)
    return vocab


def _to_model_ids(vocab: list[str], lm: NgramLM) -> tuple[np.ndarray, np.ndarray]:
    """Per union word: its id in ``lm`` (<unk>'s when unknown), and whether ``lm`` knows it."""
    ids = np.array([lm.index.get(w, -1) for w in vocab], dtype=np.int64)
    known = ids >= 0
    known[vocab.index(UNK)] = True
    return np.where(known, ids, lm.unk_id), known


def _union_tables(models: Sequence[NgramLM], vocab: list[str]) -> list[np.ndarray]:
    """Per order n >= 2, the sorted keys (context row · V + word) of the union's n-grams."""
    V = len(vocab)
    to_union = [_index_of(vocab, lm.vocab) for lm in models]
    rowmaps = list(to_union)  # per model: its rows of order n−1 -> union rows
    keys: list[np.ndarray] = []
    for n in range(2, max(lm.order for lm in models) + 1):
        parts: list[np.ndarray] = []
        own: list[np.ndarray | None] = []
        for lm, rowmap, words in zip(models, rowmaps, to_union, strict=True):
            if n > lm.order:
                own.append(None)
                continue
            k = lm.keys[n - 1]
            union_keys = rowmap[k // lm.vocab_size] * V + words[k % lm.vocab_size]
            parts.append(union_keys)
            own.append(union_keys)
        table = np.unique(np.concatenate(parts))
        keys.append(table)
        rowmaps = [
            np.searchsorted(table, u) if u is not None else r
            for u, r in zip(own, rowmaps, strict=True)
        ]
    return keys


def _index_of(vocab: list[str], words: list[str]) -> np.ndarray:
    where = {w: i for i, w in enumerate(vocab)}
    return np.array([where[w] for w in words], dtype=np.int64)


def _mixed(models, weights, maps, words: np.ndarray) -> np.ndarray:
    """log10 Σ_i λ_i P_i(w | h) for each row of ``words`` (union ids)."""
    total = np.full(len(words), -np.inf)
    for lm, lam, (ids, known) in zip(models, weights, maps, strict=True):
        logp = score_ngrams(lm, ids[words]) * LN10 + np.log(lam)
        logp[~known[words[:, -1]]] = -np.inf  # a word lm does not know: probability 0
        total = np.logaddexp(total, logp)
    return total / LN10


def merge(
    models: Sequence[NgramLM],
    weights: Sequence[float],
    phase: Callable[[str], None] = quiet,
) -> NgramLM:
    """The statically interpolated model Σ_i λ_i P_i as one back-off model (module docstring)."""
    weights = check_weights(weights, len(models))
    # a model of weight 0 takes no part: its n-grams and words would only be listed with P = 0
    models = [lm for lm, lam in zip(models, weights, strict=True) if lam > 0]
    weights = [lam for lam in weights if lam > 0]
    vocab = union_vocab(models)
    V = len(vocab)
    maps = [_to_model_ids(vocab, lm) for lm in models]
    phase("merging the n-gram tables")
    keys = _union_tables(models, vocab)
    words = ngram_words(keys, V)
    logp = []
    for n, w in enumerate(words, start=1):
        phase(f"mixing the {n}-gram probabilities")
        logp.append(_mixed(models, weights, maps, w))
    for p in logp:  # <s> may have no mass in any model; ARPA writes "impossible" as -99
        p[~np.isfinite(p)] = LOG10_ZERO
    logbo: list[np.ndarray] = []
    for n in range(2, len(words) + 1):
        phase(f"back-off weights of the {n - 1}-grams")
        lower = NgramLM(vocab, keys[: n - 2], logp[: n - 1], logbo)
        logbo.append(backoff_weights(lower, keys[n - 2], words[n - 1], logp[n - 1], V))
    return NgramLM(vocab, keys, logp, logbo)


def component_log10probs(models: Sequence[NgramLM], lines: Sequence[str]) -> list[np.ndarray]:
    """Per model, log10 P_i of every predicted token of ``lines`` under the merged model's
    vocabulary rule: a word another model knows but model i does not gets P_i = 0 (-inf)."""
    vocab = union_vocab(models)
    union = encode(lines, {w: i for i, w in enumerate(vocab)})
    predicted = union.ids[union.pos > 0]
    scores = []
    for lm in models:
        logp = lm.log10probs(lines)
        logp[~_to_model_ids(vocab, lm)[1][predicted]] = -np.inf
        scores.append(logp)
    return scores


def dynamic_log10probs(
    models: Sequence[NgramLM], weights: Sequence[float], lines: Sequence[str]
) -> np.ndarray:
    """log10 of the dynamic mixture Σ_i λ_i P_i(w_t | h_t) of every predicted token of
    ``lines``, with the merged model's vocabulary rule (module docstring)."""
    weights = check_weights(weights, len(models))
    total = np.full(0, -np.inf)
    for logp, lam in zip(component_log10probs(models, lines), weights, strict=True):
        with np.errstate(divide="ignore"):
            part = logp * LN10 + np.log(lam)
        total = part if len(total) == 0 else np.logaddexp(total, part)
    return total / LN10
