"""Re-ranking n-best lists with language models, and tuning the weights on a dev set.

    from elman.data.nbest import read_moses, read_references
    from elman.tasks.rescoring import feature_table, rerank, tune

    dev = feature_table(read_moses("dev.nbest"), scorers)       # + lm0, lm1 …, length
    result = tune(dev, read_references("dev.en", …), "bleu")    # coordinate ascent
    best = rerank(feature_table(read_moses("test.nbest"), scorers), result.weights)

**Features** of a hypothesis: those of the n-best list (the Moses features field and its
``total``; Kaldi's score files), ``lm0``, ``lm1`` … — the natural log of its probability under
each ``--lm`` model, one sentence scored on its own (elman.tasks.scoring) — and ``length``, its
number of words. **The new score** is Σ_f w_f · feature_f; the 1-best of a sentence is its
hypothesis of highest score (the earlier one in the list on a tie). A feature without a weight
counts 0.

**Tuning** maximises corpus BLEU (sacreBLEU, its default 13a tokenisation) or minimises corpus
WER (jiwer) of the 1-best lists of a dev set by coordinate ascent: starting from the list's
own score (``total`` weight 1; without one, each of the list's features 1) and every added
feature 0, each weight in turn is set to the best value of the grid −2, −1.95, …, 2 (and its
current value) with the others fixed — the grid applies to each feature divided by its spread
(its mean standard deviation within a sentence's list), so a step moves an LM's log P (tens of
nats) and a length-normalised score (about 1) alike; the weights reported and saved are those
of the features as they are — keeping the current value unless another is strictly
better (ties go to the value nearest the current one); up to ``rounds`` passes over the
weights, stopping after a pass that changes nothing. Each hypothesis' sufficient statistics
(BLEU's n-gram matches and lengths; WER's errors and reference words) are computed once, so
each try of a weight costs one arg-max per sentence; the final numbers are recomputed by
sacreBLEU and jiwer on the chosen text. It is the simple search of MERT-style rescoring
(Och 2003 uses an exact line search), good for the few features here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from elman.data.nbest import TOTAL, NbestList
from elman.errors import ElmanError
from elman.files import write_json
from elman.provenance import provenance
from elman.tasks.scoring import SentenceScorer, score_lines

LENGTH = "length"
METRICS = ("bleu", "wer")
GRID = tuple(round(-2.0 + 0.05 * i, 2) for i in range(81))  # −2, −1.95, …, 2
ROUNDS = 5


@dataclass
class Features:
    """An n-best list as numbers: ``values[i, k, f]`` is feature f of sentence i's k-th
    hypothesis (0 where the list lacks it); ``valid[i, k]`` marks real hypotheses (lists are
    padded to the longest)."""

    nbest: NbestList
    names: list[str]
    values: np.ndarray  # (N, K, F)
    valid: np.ndarray  # (N, K) bool
    added: list[str] = field(default_factory=list)  # lm0 … and length, added here

    def texts(self, choice: np.ndarray) -> list[str]:
        """The chosen hypothesis of every sentence, in order."""
        lists = self.nbest.lists.values()
        return [hyps[k].text for hyps, k in zip(lists, choice.tolist(), strict=True)]


def lm_names(scorers: Sequence[Any]) -> list[str]:
    return [f"lm{i}" for i in range(len(scorers))]


def feature_table(nbest: NbestList, scorers: Sequence[SentenceScorer] = ()) -> Features:
    """The features of every hypothesis (module docstring), with ``lm{i}`` from ``scorers[i]``
    and ``length``."""
    if not len(nbest):
        raise ElmanError("the n-best list has no hypotheses")
    own = nbest.feature_names()
    added = [*lm_names(scorers), LENGTH]
    clash = next((n for n in added if n in own), None)
    if clash is not None:
        raise ElmanError(f"the n-best list already has a feature {clash!r}, which rescore adds")
    names = own + added
    N, K = len(nbest), max(len(h) for h in nbest.lists.values())
    values = np.zeros((N, K, len(names)))
    valid = np.zeros((N, K), dtype=bool)
    column = {n: j for j, n in enumerate(names)}
    lm = [sentence_logprobs(s, nbest) for s in scorers]
    for i, hyps in enumerate(nbest.lists.values()):
        for k, h in enumerate(hyps):
            valid[i, k] = True
            for name, value in h.features.items():
                values[i, k, column[name]] = value
            for name, table in zip(lm_names(scorers), lm, strict=True):
                values[i, k, column[name]] = table[h.text]
            values[i, k, column[LENGTH]] = len(h.text.split())
    return Features(nbest, names, values, valid, added)


def sentence_logprobs(scorer: SentenceScorer, nbest: NbestList) -> dict[str, float]:
    """ln P of every distinct hypothesis text under ``scorer``."""
    texts = list(dict.fromkeys(h.text for hyps in nbest.lists.values() for h in hyps))
    return {t: s.logprob for t, s in zip(texts, score_lines(scorer, texts), strict=True)}


# --- weights ---------------------------------------------------------------------------------
def weight_vector(features: Features, weights: Mapping[str, float]) -> np.ndarray:
    """``weights`` over ``features.names`` (0 for a feature without one, with a warning); a
    weight for a feature the list does not have is an error."""
    unknown = [n for n in weights if n not in features.names]
    if unknown:
        raise ElmanError(
            f"the weights name {', '.join(unknown)}, which the n-best list does not have "
            f"(it has: {', '.join(features.names)}; lm0 … come from --lm)"
        )
    unweighted = [n for n in features.names if n not in weights]
    if unweighted:
        warnings.warn(f"no weight for {', '.join(unweighted)}: counted 0", stacklevel=2)
    return np.array([float(weights.get(n, 0.0)) for n in features.names])


def start_weights(features: Features) -> dict[str, float]:
    """The list's own ranking: ``total`` 1 (else each of its features 1), added features 0."""
    own = [n for n in features.names if n not in features.added]
    first = [TOTAL] if TOTAL in own else own
    return {n: (1.0 if n in first else 0.0) for n in features.names}


def scores(features: Features, w: np.ndarray) -> np.ndarray:
    """Σ_f w_f · feature_f of every hypothesis, shape (N, K); −inf for padding."""
    return np.where(features.valid, features.values @ w, -np.inf)


def rerank(features: Features, weights: Mapping[str, float] | np.ndarray) -> np.ndarray:
    """The index of every sentence's best hypothesis under ``weights``, shape (N,)."""
    w = weights if isinstance(weights, np.ndarray) else weight_vector(features, weights)
    return np.argmax(scores(features, w), axis=1)  # the first of equal scores


def order(features: Features, w: np.ndarray) -> list[list[int]]:
    """Every sentence's hypotheses from the best to the worst new score (stable)."""
    s = scores(features, w)
    return [
        [k for k in np.argsort(-row, kind="stable").tolist() if valid[k]]
        for row, valid in zip(s, features.valid, strict=True)
    ]


# --- metrics ---------------------------------------------------------------------------------
@dataclass
class MetricStats:
    """Each hypothesis' sufficient statistics for a corpus metric, shape (N, K, S)."""

    metric: str
    stats: np.ndarray

    def corpus(self, choice: np.ndarray) -> float:
        """BLEU, or WER in %, of the hypotheses ``choice`` (one index per sentence)."""
        chosen = self.stats[np.arange(len(choice)), choice].sum(axis=0)  # (S,)
        if self.metric == "bleu":
            return float(_bleu()._compute_score_from_stats(chosen.astype(int).tolist()).score)
        errors, words = chosen
        return 100.0 * errors / words

    def gain(self, choice: np.ndarray) -> float:
        """What tuning maximises: BLEU, or −WER."""
        value = self.corpus(choice)
        return value if self.metric == "bleu" else -value


def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU()


def metric_stats(features: Features, refs: Sequence[str], metric: str) -> MetricStats:
    """The statistics of every hypothesis against its sentence's reference."""
    if metric not in METRICS:
        raise ElmanError(f"--metric {metric!r} unknown; valid: {', '.join(METRICS)}")
    lists = list(features.nbest.lists.values())
    pairs = [(i, k, h.text) for i, hyps in enumerate(lists) for k, h in enumerate(hyps)]
    if metric == "bleu":
        # sacreBLEU's own per-sentence statistics (hypothesis and reference lengths, n-gram
        # matches and totals), the numbers its corpus_score sums
        flat = _bleu()._extract_corpus_statistics(
            [t for _, _, t in pairs], [[refs[i] for i, _, _ in pairs]]
        )
    else:
        if not any(r.split() for r in refs):
            raise ElmanError("--refs: every reference is empty; WER needs reference words")
        flat = [_wer_stats(refs[i], t) for i, _, t in pairs]
    width = len(flat[0])
    stats = np.zeros((len(lists), features.valid.shape[1], width))
    for (i, k, _), row in zip(pairs, flat, strict=True):
        stats[i, k] = row
    return MetricStats(metric, stats)


def _wer_stats(ref: str, hyp: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), by jiwer."""
    try:
        import jiwer
    except ImportError:
        raise ElmanError("--metric wer needs jiwer: pip install 'elman[asr]'") from None
    if not ref.split():
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def check_metric(stats: MetricStats, texts: list[str], refs: Sequence[str], value: float) -> None:
    """The library's own corpus number of ``texts`` must be the one the statistics gave."""
    if stats.metric == "bleu":
        from sacrebleu import corpus_bleu

        direct = corpus_bleu(texts, [list(refs)]).score
    else:
        import jiwer

        nonempty = [(r, t) for r, t in zip(refs, texts, strict=True) if r.split()]
        extra = sum(len(t.split()) for r, t in zip(refs, texts, strict=True) if not r.split())
        out = jiwer.process_words([r for r, _ in nonempty], [t for _, t in nonempty])
        errors = out.substitutions + out.deletions + out.insertions + extra
        direct = 100.0 * errors / sum(len(r.split()) for r, _ in nonempty)
    if not math.isclose(direct, value, rel_tol=1e-9, abs_tol=1e-9):
        raise ElmanError(f"internal: {stats.metric} {direct} != {value} from its statistics")


# --- tuning ----------------------------------------------------------------------------------
@dataclass
class Tuned:
    """The weights found on a dev set, and what they gave."""

    weights: dict[str, float]
    metric: str
    baseline: float  # the metric of the list's own 1-best (the start weights)
    tuned: float  # and of the tuned weights
    rounds: int  # passes made
    sentences: int

    def summary(self) -> str:
        shown = ", ".join(f"{n}={w:g}" for n, w in self.weights.items())
        return (
            f"{self.metric} on the dev set ({self.sentences} sentences): {self.baseline:.2f} "
            f"-> {self.tuned:.2f} after {self.rounds} rounds; weights {shown}"
        )


def tune(
    features: Features,
    refs: Sequence[str],
    metric: str,
    *,
    grid: Sequence[float] = GRID,
    rounds: int = ROUNDS,
) -> Tuned:
    """Coordinate ascent on the weights (module docstring)."""
    stats = metric_stats(features, refs, metric)
    start = start_weights(features)
    # The search runs on features divided by their spread, so one grid step moves every feature
    # about as much: an LM's log P of a sentence (tens of nats) would otherwise jump past the
    # list's length-normalised score (about 1) at the smallest step and never get a weight.
    spread = feature_spread(features)
    raw = features
    features = replace(features, values=features.values / spread)
    w = np.array([start[n] for n in features.names]) * spread
    baseline = best = stats.gain(rerank(features, w))
    done = 0
    while done < rounds:
        done += 1
        changed = False
        for f in range(len(w)):
            value, gain = _line_search(features, stats, w, f, grid)
            if gain > best + 1e-12:
                w[f], best, changed = value, gain, True
        if not changed:
            break
    w = w / spread  # the weights of the features as they are
    choice = rerank(raw, w)
    tuned = stats.corpus(choice)
    check_metric(stats, raw.texts(choice), refs, tuned)
    sign = 1.0 if metric == "bleu" else -1.0
    return Tuned(
        weights={n: float(x) for n, x in zip(raw.names, w, strict=True)},
        metric=metric,
        baseline=sign * baseline,
        tuned=tuned,
        rounds=done,
        sentences=len(refs),
    )


def feature_spread(features: Features) -> np.ndarray:
    """Each feature's typical difference between the hypotheses of one sentence: the mean over
    sentences of its standard deviation within the list (1 where it never differs)."""
    valid = features.valid[..., None]  # (S, K, 1)
    count = np.maximum(valid.sum(axis=1), 1)  # (S, 1)
    values = np.where(valid, features.values, 0.0)
    mean = values.sum(axis=1) / count  # (S, F)
    var = np.where(valid, (features.values - mean[:, None, :]) ** 2, 0.0).sum(axis=1) / count
    spread = np.sqrt(var).mean(axis=0)  # (F,)
    return np.where(spread > 0, spread, 1.0)


def _line_search(
    features: Features, stats: MetricStats, w: np.ndarray, f: int, grid: Sequence[float]
) -> tuple[float, float]:
    """The best value of weight ``f`` on the grid (others fixed), nearest the current on ties."""
    rest = np.where(features.valid, features.values @ w - features.values[..., f] * w[f], -np.inf)
    tried = []
    for v in sorted({*grid, float(w[f])}):
        choice = np.argmax(rest + v * features.values[..., f], axis=1)
        tried.append((stats.gain(choice), -abs(v - w[f]), v))
    gain, _, value = max(tried)
    return value, gain


# --- weights files ---------------------------------------------------------------------------
def save_weights(path: str | Path, tuned: Tuned) -> None:
    """``tuned`` as JSON (atomically), with the search and provenance, for ``--weights``."""
    record = {
        "weights": tuned.weights,
        "metric": tuned.metric,
        "dev_sentences": tuned.sentences,
        "dev_baseline": tuned.baseline,
        "dev_tuned": tuned.tuned,
        "search": {"method": "coordinate ascent", "grid": [GRID[0], GRID[-1], 0.05],
                   "rounds": tuned.rounds},
        **provenance(),
    }  # fmt: skip
    write_json(path, record)


def load_weights(path: str | Path) -> dict[str, float]:
    """The ``weights`` of a file :func:`save_weights` wrote (or any JSON object holding a
    ``weights`` object of finite numbers)."""
    import json

    def refuse(constant: str) -> None:
        raise ElmanError(f"{path}: {constant} is not JSON (weights are finite numbers)")

    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)
    except FileNotFoundError:
        raise ElmanError(f"{path}: no such weights file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ElmanError(f"{path}: not a weights file ({err})") from None
    weights = record.get("weights") if isinstance(record, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in weights.values()
    ):
        raise ElmanError(f'{path}: expected {{"weights": {{"name": number, …}}}}')
    return {str(k): float(v) for k, v in weights.items()}
