"""``elman.evaluate``: a trained model's numbers on one split, mixed or ensembled on request.

    import elman

    result = elman.evaluate("runs/ptb-small-lstm", "test")              # perplexity
    result = elman.evaluate("runs/ptb-small-lstm", "test", mix="runs/ptb-kn5.arpa")
    result = elman.evaluate("runs/ud-lines-upos", "test", report=True,
                            ensemble=["runs/ud-lines-upos-s2", "runs/ud-lines-upos-s3"])
    print(result.summary())

With ``mix`` the neural model's per-token probabilities are interpolated with an ARPA n-gram
model's, P = λ·P_neural + (1−λ)·P_ngram, λ tuned on the validation split by EM (``lam="auto"``)
or given; both must score every token of the split once, ``</s>`` included (the perplexity
convention of docs/data.md), so only word-level language models mix with a word n-gram.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elman.errors import ElmanError
from elman.inference.dynamic import DEFAULT_SEGMENT, DynamicSettings
from elman.inference.limits import MAX_BATCH
from elman.tasks.loading import load
from elman.tasks.protocol import Loaded, Metrics


@dataclass
class Mixture:
    """The interpolation of a neural model with an n-gram model on one split."""

    arpa: str
    lam: float  # λ, the neural model's weight
    tuned_on: str | None  # "valid" when λ was tuned, None when given
    neural_ppl: float
    ngram_ppl: float
    ppl: float  # of the mixture

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lam")
        return d

    def summary(self) -> str:
        how = f"tuned on {self.tuned_on}" if self.tuned_on else "given"
        return (
            f"mixed with {self.arpa} (ppl {self.ngram_ppl:.2f}), lambda {self.lam:.3f} "
            f"({how}): ppl {self.ppl:.2f}"
        )


@dataclass
class CacheResult:
    """The model interpolated with its neural cache on one split (:mod:`elman.inference.cache`)."""

    size: int  # N, the hidden states kept
    theta: float
    lam: float  # λ, the cache's weight
    tuned_on: str | None  # "valid" when θ or λ was tuned there
    neural_ppl: float
    ppl: float  # of the model with its cache
    # the model whose states the cache reads: "static" (as trained) or "dynamic" (as dynamic
    # evaluation adapts it, the two combined)
    model: str = "static"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lam")
        return d

    def summary(self) -> str:
        how = f"tuned on {self.tuned_on}" if self.tuned_on else "given"
        over = " of the dynamically evaluated model" if self.model == "dynamic" else ""
        return (
            f"with a neural cache of {self.size} states{over}, theta {self.theta:g}, lambda "
            f"{self.lam:.2f} ({how}): ppl {self.ppl:.2f} (without: {self.neural_ppl:.2f})"
        )


@dataclass
class DynamicResult:
    """The model adapted to the text as it scores it (:mod:`elman.inference.dynamic`)."""

    lr: float  # η
    decay: float  # λ, the pull back to the trained weights
    static_ppl: float
    ppl: float
    rule: str = "sgd"  # the update: "sgd" or "rms" (elman.inference.dynamic)
    segment: int = 0  # tokens per step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"with dynamic evaluation ({self.rule}, lr {self.lr:g}, decay {self.decay:g}, "
            f"segments of {self.segment}): ppl {self.ppl:.2f} (static: {self.static_ppl:.2f})"
        )


@dataclass
class Evaluation:
    """One split's numbers for one model (with its ensemble), and what was asked on top."""

    checkpoint: str
    task: str
    data: str  # the corpus name
    split: str
    metrics: Metrics  # the task's numbers (results files and --json hold these keys)
    summary_line: str  # the task's one line for people
    notes: list[str] = field(default_factory=list)  # and the lines it adds under it
    mix: Mixture | None = None
    cache: CacheResult | None = None
    dynamic: DynamicResult | None = None
    report: dict[str, Any] | None = None  # taggers: per-tag P/R/F1 and confusions

    def to_dict(self) -> dict[str, Any]:
        """The flat record ``elman eval --json`` prints."""
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint, "data": self.data, "split": self.split,
            **self.metrics,
        }  # fmt: skip
        if self.report is not None:
            out["report"] = self.report
        if self.mix is not None:
            out["mix"] = self.mix.to_dict()
        if self.cache is not None:
            out["cache"] = self.cache.to_dict()
        if self.dynamic is not None:
            out["dynamic"] = self.dynamic.to_dict()
        return out

    def summary(self) -> str:
        """``data/split: <the task's line>``, and the mixture's line."""
        lines = [f"{self.data}/{self.split}: {self.summary_line}", *self.notes]
        if self.mix is not None:
            lines.append(self.mix.summary())
        if self.cache is not None:
            lines.append(self.cache.summary())
        if self.dynamic is not None:
            lines.append(self.dynamic.summary())
        return "\n".join(lines)


def parse_lambda(lam: str | float) -> float | None:
    """``auto`` (None: tune it) or a weight in [0, 1]."""
    if lam == "auto":
        return None
    try:
        value = float(lam)
    except ValueError:
        raise ElmanError(f"--lambda {lam!r}: give auto or a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise ElmanError(f"--lambda {lam}: must be in [0, 1]")
    return value


def mix_with_ngram(
    scores: Callable[[str], np.ndarray], dataset: Any, split: str, arpa: str, lam: str | float
) -> Mixture:
    """Per-token interpolation of the neural scores (``scores(split)``: log P of every token in
    corpus order) with the ARPA model ``arpa``; λ tuned on valid when ``lam`` is ``auto``."""
    from elman.models.mixture import mix_logprobs, perplexity, tune_lambda
    from elman.models.ngram import read_model

    value = parse_lambda(lam)
    ngram = read_model(arpa)

    def both(s: str) -> tuple[np.ndarray, np.ndarray]:
        neural = scores(s)
        ng = ngram.logprobs(dataset.lines(s))
        if len(neural) != len(ng):
            raise ElmanError(
                f"--mix: the neural model scored {len(neural)} tokens of {dataset.name}/{s} and "
                f"{arpa} {len(ng)}; they must share the token convention (every token, </s> "
                "included); mixing a character model with a word n-gram is not possible"
            )
        return neural, ng

    tuned_on = None
    if value is None:
        value, tuned_on = tune_lambda(*both("valid")), "valid"
    neural, ng = both(split)
    return Mixture(
        arpa=str(arpa),
        lam=value,
        tuned_on=tuned_on,
        neural_ppl=perplexity(neural),
        ngram_ppl=perplexity(ng),
        ppl=perplexity(mix_logprobs(neural, ng, value)),
    )


def parse_cache_value(text: str | float, flag: str, high: float | None) -> float | None:
    """``auto`` (None: tune it on valid) or a finite number >= 0 (and < ``high`` when given)."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ElmanError(f"{flag} {text!r}: give auto or a number") from None
    if not math.isfinite(value) or value < 0 or (high is not None and value >= high):
        bound = f"in [0, {high:g})" if high is not None else ">= 0"
        raise ElmanError(f"{flag} {text}: must be {bound}")
    return value


def with_cache(
    scores: Scores,
    split: str,
    size: int,
    theta: str | float,
    lam: str | float,
    dynamic: DynamicSettings | None = None,
) -> CacheResult:
    """The model's perplexity on ``split`` with its neural cache of ``size`` states; θ and λ
    given, or tuned together on the valid split over the grids of :mod:`elman.inference.cache`.
    With ``dynamic`` the model is adapted as it scores (:mod:`elman.inference.dynamic`) and the
    cache reads the adapted model's states."""
    from elman.inference.cache import LAMBDAS, THETAS, mix_cache, tune_cache

    if not 1 <= size <= MAX_CACHE:
        raise ElmanError(f"--cache {size}: give a number of states in 1 … {MAX_CACHE}")
    th = parse_cache_value(theta, "--cache-theta", None)
    la = parse_cache_value(lam, "--cache-lambda", 1.0)
    tuned_on = None
    if th is None or la is None:
        thetas = THETAS if th is None else (th,)
        m, c = scores.cache("valid", size, tuple(thetas), dynamic)
        best = tune_cache(m, c, size, thetas, LAMBDAS if la is None else (0.0, la))
        th, la, tuned_on = best.theta, best.lam, "valid"
    m, c = scores.cache(split, size, (th,), dynamic)
    return CacheResult(
        size=size,
        theta=th,
        lam=la,
        tuned_on=tuned_on,
        neural_ppl=math.exp(-float(np.mean(m))),
        ppl=math.exp(-float(np.mean(mix_cache(m, c[0], la)))),
        model="static" if dynamic is None else "dynamic",
    )


MAX_CACHE = 100_000


@dataclass
class Scores:
    """Per-token scores of one loaded model on one corpus, each computed once.

    An evaluation reads the same scores several times: a mixture tunes λ on valid's, dynamic
    evaluation scores the split beside the mixture, and a results record evaluates valid and
    test. Each dynamic pass costs about a training epoch over the split, so ``elman eval --mix
    --dynamic --results`` adapted the model over valid four times before this memo.
    """

    loaded: Loaded
    dataset: Any
    batch_size: int | None = None
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def static(self, split: str) -> np.ndarray:
        """ln p(y_t) of every token of ``split``, in corpus order."""
        return self._once(("static", split), lambda: self.loaded.task.token_logprobs(
            self.loaded, self.dataset, split, batch_size=self.batch_size
        ))  # fmt: skip

    def dynamic(self, split: str, settings: DynamicSettings) -> np.ndarray:
        """The same under dynamic evaluation with ``settings`` (rate 0: static, read at batch 1)."""
        adapted = self._memo.get(("states", split, settings))
        if adapted is not None:  # the cache's pass over the adapted model gave these scores
            return adapted.model_logp
        return self._once(("dynamic", split, settings), lambda: self.loaded.task.dynamic_logprobs(
            self.loaded, self.dataset, split, settings
        ))  # fmt: skip

    def adopt(self, split: str, settings: DynamicSettings, logprobs: np.ndarray) -> None:
        """Take ``split``'s dynamic scores under ``settings`` computed by another process from
        the same checkpoint (a search over rates, one process a rate), as if computed here."""
        self._memo[("dynamic", split, settings)] = logprobs

    def cache(
        self,
        split: str,
        size: int,
        thetas: tuple[float, ...],
        dynamic: DynamicSettings | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """ln p_model(y_t) and the cache's p_cache(y_t) for each θ, (len(thetas), T), the model
        adapted by ``dynamic`` when given (one pass of the model per split and setting)."""
        states = self._once(("states", split, dynamic), lambda: self.loaded.task.cache_states(
            self.loaded, self.dataset, split, dynamic
        ))  # fmt: skip
        key = ("cache", split, size, thetas, dynamic)
        probs = self._once(key, lambda: states.probs(size, thetas))
        return states.model_logp, probs

    def _once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def evaluate(
    model: str | Path | Loaded,
    split: str = "test",
    *,
    data: str | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    ensemble: Sequence[str | Path] = (),
    report: bool = False,
    mix: str | None = None,
    lam: str | float = "auto",
    cache: int | None = None,
    cache_theta: str | float = "auto",
    cache_lambda: str | float = "auto",
    dynamic: float | DynamicSettings | None = None,
    dynamic_decay: float = 0.0,
    scores: Scores | None = None,
) -> Evaluation:
    """Score ``split`` of ``data`` (default: the corpus the model was trained on).

    ``model``: a checkpoint, a run folder or an already loaded model. ``batch_size``: the
    evaluation batch (default: the recipe's). ``ensemble``: more checkpoints averaged with it
    (taggers). ``report``: per-class precision/recall/F1 (taggers). ``mix``: an ARPA file to
    interpolate with, ``lam`` its weight (module docstring). ``cache``: interpolate a language
    model with its neural cache of that many states, θ and λ given or ``auto`` (tuned on valid).
    ``dynamic``: also score a language model with dynamic evaluation at this learning rate,
    pulled back to its weights by ``dynamic_decay``, or as :class:`DynamicSettings` say; with
    ``mix`` too, the mixture is of the adapted model (λ tuned on its valid scores); with
    ``cache`` too, the cache reads the adapted model's states (the two combined), and a mixture
    is of the adapted model with its cache.
    ``scores``: the :class:`Scores` of an earlier call with the same loaded model and batch
    size, whose corpus is used (``data`` stays None) and whose per-token scores are reused (a
    results record shares one between valid and test).
    """
    if isinstance(dynamic, int | float):
        dynamic = DynamicSettings(float(dynamic), dynamic_decay)
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH:
        raise ElmanError(f"--batch-size must be in 1 … {MAX_BATCH}, got {batch_size}")
    loaded = _load(model, device, ensemble)
    if report:
        loaded.require("report", "--report")
    if mix is not None:
        loaded.require("mix", "--mix")
        parse_lambda(lam)  # a bad value stops before the scoring
    check_adaptation(loaded, mix, cache, cache_theta, cache_lambda, dynamic)
    task = loaded.task
    if scores is None:
        scores = Scores(loaded, loaded.dataset(data), batch_size)
    elif scores.loaded is not loaded or scores.batch_size != batch_size or data is not None:
        raise ValueError("scores: from another model or batch size, or with data= (its corpus)")
    dataset = scores.dataset
    metrics = task.evaluate(loaded, dataset, split, batch_size=batch_size)
    result = Evaluation(
        checkpoint=str(loaded.path),
        task=task.name,
        data=dataset.name,
        split=split,
        metrics=metrics,
        summary_line=task.summary(metrics),
        notes=task.notes(metrics),
    )
    check_finite(metrics, f"{loaded.path} on {dataset.name}/{split}")
    if report:
        result.report = task.report(loaded, dataset, split, batch_size=batch_size)
    if cache is not None:
        result.cache = with_cache(scores, split, cache, cache_theta, cache_lambda, dynamic)
        check_finite(result.cache.to_dict(), f"{loaded.path} with a cache on {split}", CACHE)
    if mix is not None:
        neural = neural_scores(scores, dynamic, result.cache)
        result.mix = mix_with_ngram(neural, dataset, split, mix, lam)
        check_finite(result.mix.to_dict(), f"{loaded.path} mixed with {mix} on {split}", MIXTURE)
    if dynamic is not None:
        result.dynamic = with_dynamic(scores, split, dynamic)
    return result


def _load(
    model: str | Path | Loaded, device: str | torch.device, ensemble: Sequence[str | Path]
) -> Loaded:
    if not isinstance(model, Loaded):
        return load(model, device, ensemble=ensemble)
    if ensemble:
        raise ElmanError("give the ensemble to elman.load(..., ensemble=...) with the model")
    return model


def neural_scores(
    scores: Scores, dynamic: DynamicSettings | None, cache: CacheResult | None = None
) -> Callable[[str], np.ndarray]:
    """split -> ln p(y_t) of its tokens, as a mixture reads them: the model with its cache (θ and
    λ as ``cache`` found them; the adapted model's under dynamic evaluation), the adapted model's
    scores under dynamic evaluation, else the static ones."""
    if cache is not None:
        from elman.inference.cache import mix_cache

        def cached(s: str) -> np.ndarray:
            model, cache_p = scores.cache(s, cache.size, (cache.theta,), dynamic)
            return mix_cache(model, cache_p[0], cache.lam)

        return cached
    if dynamic is not None:
        return lambda s: scores.dynamic(s, dynamic)
    return scores.static


def check_adaptation(
    loaded: Loaded,
    mix: str | None,
    cache: int | None,
    cache_theta: str | float,
    cache_lambda: str | float,
    dynamic: DynamicSettings | None,
) -> None:
    """Stop in one line, before any scoring, on a cache or dynamic evaluation the model cannot
    have or with bad values."""
    if cache is not None:
        loaded.require("cache", "--cache")
        parse_cache_value(cache_theta, "--cache-theta", None)
        parse_cache_value(cache_lambda, "--cache-lambda", 1.0)
    if dynamic is not None:
        loaded.require("dynamic", "--dynamic")
        d = dynamic
        good = math.isfinite(d.lr) and d.lr >= 0 and 0 <= d.decay < 1 and d.stats_tokens >= 1
        if not (good and (d.segment is None or d.segment >= 1) and d.eps > 0):
            raise ElmanError(
                f"--dynamic {d.lr} --dynamic-decay {d.decay}: give a learning rate >= 0, a decay "
                "in [0, 1), segments and statistics of at least one token and eps > 0"
            )


def with_dynamic(scores: Scores, split: str, settings: DynamicSettings) -> DynamicResult:
    """``loaded``'s perplexity on ``split`` under dynamic evaluation, beside its static one read
    the same way (batch 1, the same segments; the evaluation batch may differ)."""
    static = dataclasses.replace(settings, lr=0.0)  # rate 0: the static scores, read the same way
    # a rate too high makes the adapted model diverge: inf (refused below), not an overflow
    ppl = [_exp(-float(np.mean(scores.dynamic(split, s)))) for s in (static, settings)]
    loaded = scores.loaded
    segment = settings.segment or int(getattr(loaded.recipe.data, "bptt", DEFAULT_SEGMENT))
    result = DynamicResult(
        settings.lr, settings.decay, ppl[0], ppl[1], rule=settings.rule, segment=segment
    )
    check_finite(result.to_dict(), f"{loaded.path} dynamically on {split}", DYNAMIC)
    return result


def _exp(x: float) -> float:
    return math.exp(x) if x < 709.0 else math.inf  # NaN stays NaN


# The numbers a result stands on. Others may be NaN by definition (a tagger's accuracy on
# unseen words when the split has none) and are shown as n/a, not refused.
HEADLINE = ("loss", "ppl", "bpc", "accuracy", "bleu", "chrf", "mse")
MIXTURE = ("lambda", "neural_ppl", "ngram_ppl", "ppl")
CACHE = ("theta", "lambda", "neural_ppl", "ppl")
DYNAMIC = ("static_ppl", "ppl")


def check_finite(metrics: Mapping[str, Any], what: str, keys: Sequence[str] = HEADLINE) -> None:
    """Refuse a NaN or infinite number among ``metrics[keys]``: printed, it would pass for a
    result (``elman eval`` printed ``ppl nan`` and exited 0).

    A softmax never gives probability 0, so a non-finite loss or perplexity means the model
    computes NaN or infinity (damaged or diverged weights); for an n-gram model, that it gives
    a token of the split probability 0.
    """
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
            raise ElmanError(
                f"{what}: {key} is {value}, not a finite number; the model's outputs are not "
                "numbers (damaged or diverged weights?): evaluate another checkpoint or retrain"
            )
