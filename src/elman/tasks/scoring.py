"""Sentence scores from any language model elman trains or reads, and from their mixtures.

    from elman.tasks.scoring import build_scorer, score_lines

    scorer = build_scorer(["runs/ptb-small-lstm", "runs/ptb-kn5.arpa"], mix_lambda="0.5")
    for s in score_lines(scorer, ["the cat sat", "a dog"]):
        print(s.line, s.logprob, s.log10prob, s.tokens, s.oovs, s.ppl)

**The sentence convention** (docs/lm.md, docs/ngram.md): every line is one sentence scored on
its own. The model starts fresh at the sentence start (an n-gram model after ``<s>``, which is
context only; a neural model as after an ``<eos>``, from a zero state) and predicts each word and
then the sentence end, ``</s>`` (the neural models' ``<eos>``). Every model kind scores the same
tokens, so the numbers of different models are comparable and mixable, and the sum over the
lines is a corpus score (the n-gram's equals :meth:`NgramLM.perplexity`'s, which starts every
line afresh too; a neural model's differs from ``elman eval``'s corpus convention, where the
history crosses line ends).

* Words: a line's whitespace-separated words; a literal ``<s>`` or ``</s>`` is dropped (each line
  already has them; KenLM does the same). An empty line is just ``</s>``.
* Characters (a character-level LM): every character of the line, a space written ``_`` for
  vocabularies with ``_`` but no space (PTB-char), as ``elman generate`` reads a prompt; then
  ``<eos>``, or for a corpus without ``<eos>`` (tinyshakespeare) the newline, starting after one.
* Unknown tokens (OOVs): tokens the model's vocabulary lacks, scored as ``<unk>``; ``</s>``
  never is one. A literal ``<unk>`` in the text (PTB has thousands) is a word of the vocabulary,
  as everywhere in elman (docs/data.md, docs/ngram.md): it gets ``<unk>``'s probability but is
  not an OOV (KenLM's ``query`` would count it as one). In a mixture a token is unknown when
  any member lacks it.

A scorer returns one :class:`TokenScores` per line; :func:`score_lines` turns lines into typed
:class:`SentenceScore`\\ s, chunk by chunk, so a stream of millions of lines is scored in bounded
memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from elman.errors import ElmanError
from elman.inference.dynamic import DynamicSettings
from elman.inference.scoring import (
    nplm_sentence_logprobs,
    rnn_sentence_logprobs,
    tokens_per_step,
)
from elman.models.mixture import mix_many, tune_weights
from elman.models.ngram import NgramLM, read_model
from elman.models.ngram.binary import is_binary
from elman.tasks.loading import load
from elman.tasks.protocol import Loaded

END = "</s>"  # the sentence end as every scorer names it (a neural model's <eos>)
MARKERS = ("<s>", "</s>")  # dropped from the text: every line already starts and ends
LN10 = math.log(10.0)
CHUNK = 1000  # lines scored together: neural batches sort within a chunk
MAX_LOG_PPL = math.log(np.finfo(np.float64).max)  # exp() of more is not a float


@dataclass(frozen=True)
class TokenScores:
    """One sentence as a model scored it.

    Attributes:
        tokens: the predicted tokens: the words (or characters), then ``</s>``.
        logprobs: shape (len(tokens),), natural-log P of each token given those before it.
        unknown: shape (len(tokens),), True for a token scored as ``<unk>`` (an OOV).
    """

    tokens: list[str]
    logprobs: np.ndarray
    unknown: np.ndarray


@dataclass(frozen=True)
class SentenceScore:
    """The score of one input line under the sentence convention (module docstring)."""

    line: int  # 1-based line number of the input
    logprob: float  # natural log P(sentence) = Σ ln P(token | history), </s> included
    tokens: int  # words (or characters) + 1 for </s>
    oovs: int  # tokens scored as <unk>
    per_token: TokenScores | None = field(default=None, repr=False)

    @property
    def log10prob(self) -> float:
        """log10 P(sentence), as KenLM's ``query`` prints it ("Total")."""
        return self.logprob / LN10

    @property
    def ppl(self) -> float:
        """exp(−logprob / tokens): the sentence's perplexity."""
        return math.exp(-self.logprob / self.tokens)

    def to_dict(self, per_token: bool = False) -> dict[str, Any]:
        """The JSON-lines record of ``elman score --format jsonl``."""
        out: dict[str, Any] = {
            "line": self.line, "logprob": self.logprob, "log10prob": self.log10prob,
            "tokens": self.tokens, "oovs": self.oovs, "ppl": self.ppl,
        }  # fmt: skip
        if per_token and self.per_token is not None:
            t = self.per_token
            out["per_token"] = [
                {"token": tok, "logprob": float(lp), "unknown": bool(u)}
                for tok, lp, u in zip(t.tokens, t.logprobs, t.unknown, strict=True)
            ]
        return out


class SentenceScorer(Protocol):
    """Anything that scores lines under the sentence convention: an n-gram model, a neural LM,
    a mixture of them."""

    name: str  # the model's path (in messages)
    level: str  # "word" or "char": only models of one level score the same tokens

    def score(self, lines: Sequence[str]) -> list[TokenScores]:
        """One :class:`TokenScores` per line, in order."""
        ...


def words_of(line: str) -> list[str]:
    """The words of a line as every word-level scorer reads them (<s> and </s> dropped)."""
    return [w for w in line.split() if w not in MARKERS]


# --- n-gram models ---------------------------------------------------------------------------
class NgramScorer:
    """An ARPA model: a line is ``<s> words </s>``, ``<s>`` context only (KenLM's ``query``)."""

    level = "word"

    def __init__(self, lm: NgramLM, name: str) -> None:
        self.lm, self.name = lm, name

    def score(self, lines: Sequence[str]) -> list[TokenScores]:
        words = [words_of(line) for line in lines]
        enc = self.lm.encode(" ".join(w) for w in words)  # the whole chunk at once
        logp = self.lm.score_encoded(enc) * LN10  # (predicted tokens,)
        unknown = enc.oov[enc.pos > 0]  # words not in the vocabulary, scored as <unk>
        cuts = np.cumsum([len(w) + 1 for w in words])[:-1]
        return [
            TokenScores([*w, END], lp, unk)
            for w, lp, unk in zip(words, np.split(logp, cuts), np.split(unknown, cuts), strict=True)
        ]


# --- neural models ---------------------------------------------------------------------------
SentenceLogprobs = Callable[..., list[np.ndarray]]
# Which tasks' models score sentences, and how (elman.inference.scoring).
SENTENCE_SCORERS: dict[str, SentenceLogprobs] = {
    "lm": rnn_sentence_logprobs,
    "nplm": nplm_sentence_logprobs,
}


class NeuralScorer:
    """An RNN LM (Elman, LSTM, GRU) or an NPLM checkpoint, batched (elman.inference.scoring)."""

    def __init__(self, loaded: Loaded, *, batch_size: int = 64) -> None:
        task = loaded.task.name
        if task not in SENTENCE_SCORERS:
            raise ElmanError(
                f"elman score needs a language model (an ARPA file, or a checkpoint of task "
                f"{' or '.join(map(repr, SENTENCE_SCORERS))}); {loaded.path} is a {task!r} model"
            )
        self.loaded, self.name, self.level = loaded, str(loaded.path), loaded.level
        self.batch_size, self.logprobs = batch_size, SENTENCE_SCORERS[task]
        vocab = loaded.vocab
        end = vocab.eos_index
        if end is None and self.level == "char":  # tinyshakespeare: a line ends at its newline
            end = vocab.stoi.get("\n")
        if end is None:
            raise ElmanError(
                f"{loaded.path}: its vocabulary has no <eos> (nor a newline), so it cannot tell "
                "where a sentence ends; elman score needs one"
            )
        self.end = end
        # PTB-char writes a word boundary as "_"; raw character corpora keep the space.
        self.space = "_" if " " not in vocab and "_" in vocab else " "
        self.max_tokens = tokens_per_step(len(vocab))

    def tokens(self, line: str) -> list[str]:
        """The tokens the model predicts before the sentence end (module docstring)."""
        if self.level == "word":
            return words_of(line)
        return [self.space if c == " " else c for c in line]

    def score(self, lines: Sequence[str]) -> list[TokenScores]:
        encoded = [self.encode(line) for line in lines]
        loaded = self.loaded
        logps = self.logprobs(
            loaded.model, [ids for _, ids, _ in encoded], self.end, loaded.device,
            batch_size=self.batch_size, max_tokens=self.max_tokens,
        )  # fmt: skip
        return [
            TokenScores([*t, END], lp, oov) for (t, _, oov), lp in zip(encoded, logps, strict=True)
        ]

    def encode(self, line: str) -> tuple[list[str], list[int], np.ndarray]:
        """A line's tokens, the ids scored (OOVs as <unk>, the end id last), and which of
        those ids are OOVs."""
        tokens = self.tokens(line)
        known = self._known(tokens)
        unk = self.loaded.vocab.unk_index
        ids = [unk if i is None else i for i in known] + [self.end]
        return tokens, ids, np.array([i is None for i in known] + [False], dtype=bool)

    def _known(self, tokens: list[str]) -> list[int | None]:
        """Each token's id, None for one the vocabulary lacks (an OOV, read as <unk>)."""
        vocab = self.loaded.vocab
        ids = [vocab.stoi.get(t) for t in tokens]
        if vocab.unk_index is None and None in ids:
            bad = tokens[ids.index(None)]
            raise ElmanError(f"{self.name}: token {bad!r} is unknown and the model has no <unk>")
        return ids


class DynamicScorer:
    """A neural scorer that learns from every line after scoring it (``elman score --dynamic``,
    dynamic evaluation across the lines in their order, :mod:`elman.inference.dynamic`).

    Each line is still scored on its own from a fresh state (the sentence convention); then the
    model takes one step on it, so a line's scores come from weights that have seen the lines
    before it, never itself. Lines are scored one at a time, in order. :meth:`restore` puts the
    trained weights back.

    The RMS rule (``settings.rule == "rms"``) divides each weight's step by the root mean square
    of its gradient over ``stats``: lines of training text (named ``stats_name`` in errors),
    each a segment under the same convention, read until ``settings.stats_tokens`` tokens.
    """

    def __init__(
        self,
        base: NeuralScorer,
        settings: DynamicSettings,
        stats: Iterable[str] | None = None,
        stats_name: str = "--dynamic-stats",
    ) -> None:
        from elman.inference.dynamic import Adapter, gradient_rms, segment_loss, window_scores

        self.base, self.name, self.level = base, base.name, base.level
        model = base.loaded.model
        scores = window_scores if base.loaded.task.name == "nplm" else segment_loss
        rms = None
        if settings.rule == "rms" and settings.lr > 0:  # rate 0 (the static scores): no steps
            if stats is None:
                raise ElmanError(
                    "--dynamic-rule rms needs training text for its gradient statistics: "
                    "give it with --dynamic-stats FILE"
                )

            def fresh(model: torch.nn.Module, batch: Any, _state: Any) -> Any:
                return scores(model, batch, None)  # every line from a zero state

            try:
                rms = gradient_rms(model, self._segments(stats, settings.stats_tokens), fresh)
            except ValueError as err:  # no line at all
                raise ElmanError(f"{stats_name}: {err}; give a file of sentences") from err
        self.adapter = Adapter(
            model, settings.lr, settings.decay, rms=rms, eps=settings.eps, scores=scores
        )

    def _segments(self, lines: Iterable[str], tokens: int) -> Iterator[Any]:
        """Each line of ``lines`` as a segment, until ``tokens`` tokens have been read."""
        from elman.inference.scoring import sentence_segment

        loaded, read = self.base.loaded, 0
        for line in lines:
            if read >= tokens:
                return
            _, ids, _ = self.base.encode(line)
            read += len(ids)
            yield sentence_segment(loaded.model, ids, self.base.end, loaded.device)

    def tokens(self, line: str) -> list[str]:
        return self.base.tokens(line)

    def score(self, lines: Sequence[str]) -> list[TokenScores]:
        from elman.inference.scoring import sentence_segment

        out = []
        loaded = self.base.loaded
        for line in lines:
            tokens, ids, oov = self.base.encode(line)
            segment = sentence_segment(loaded.model, ids, self.base.end, loaded.device)
            picked, _ = self.adapter.segment(segment)
            out.append(TokenScores([*tokens, END], picked.double().cpu().numpy(), oov))
        return out

    def restore(self) -> None:
        self.adapter.restore()


def head(lines: Iterable[str], tokens: int) -> list[str]:
    """The first lines of ``lines`` that hold at least ``tokens`` words and sentence ends (so
    at least as many tokens for any model: a character model reads more), read lazily."""
    out, read = [], 0
    for line in lines:
        if read >= tokens:
            break
        out.append(line)
        read += len(line.split()) + 1
    return out


# --- mixtures --------------------------------------------------------------------------------
class MixtureScorer:
    """Linear interpolation per token, P = Σ_i w_i P_i (elman.models.mixture)."""

    def __init__(self, members: Sequence[SentenceScorer], weights: Sequence[float]) -> None:
        levels = {m.level for m in members}
        if len(levels) > 1:
            shown = ", ".join(f"{m.name} ({m.level})" for m in members)
            raise ElmanError(
                f"models of different levels score different tokens and cannot be mixed: {shown}"
            )
        self.members, self.weights = list(members), list(weights)
        self.level = members[0].level
        self.name = "the mixture of " + ", ".join(m.name for m in members)

    def score(self, lines: Sequence[str]) -> list[TokenScores]:
        parts = [m.score(lines) for m in self.members]
        check_same_tokens(self.members, parts)
        first = parts[0]
        flat = [np.concatenate([s.logprobs for s in p]) for p in parts]  # one array per member
        mixed = mix_many(flat, self.weights)
        cuts = np.cumsum([len(s.tokens) for s in first])[:-1]
        unknown = np.logical_or.reduce([np.concatenate([s.unknown for s in p]) for p in parts])
        return [
            TokenScores(s.tokens, lp, unk)
            for s, lp, unk in zip(
                first, np.split(mixed, cuts), np.split(unknown, cuts), strict=True
            )
        ]


def check_same_tokens(members: Sequence[SentenceScorer], parts: list[list[TokenScores]]) -> None:
    """Stop when two members predicted different numbers of tokens for a line (they could not
    be mixed token by token)."""
    for i, scores in enumerate(zip(*parts, strict=True)):
        sizes = {len(s.tokens) for s in scores}
        if len(sizes) > 1:
            shown = ", ".join(
                f"{m.name}: {len(s.tokens)}" for m, s in zip(members, scores, strict=True)
            )
            raise ElmanError(f"sentence {i + 1} of a chunk: the models scored {shown} tokens")


def parse_mix_lambda(text: str, models: int) -> list[float] | None:
    """``--mix-lambda``: ``auto`` (None: tuned on ``--tune``, else equal weights), one number in
    [0, 1] (two models: the first one's weight) or one weight per model, summing to 1."""
    if text.strip() == "auto":
        return None
    usage = (
        "give auto, one number in [0, 1] (the first of two models' weight) or "
        f"{models} comma-separated weights in [0, 1] summing to 1"
    )
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ElmanError(f"--mix-lambda {text!r}: {usage}") from None
    if models < 2:
        raise ElmanError(f"--mix-lambda {text}: a mixture needs two or more models")
    if len(values) == 1 and models == 2:
        values = [values[0], 1.0 - values[0]]
    if len(values) != models or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise ElmanError(f"--mix-lambda {text}: {usage}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ElmanError(f"--mix-lambda {text}: the weights sum to {sum(values):g}, not 1")
    return values


def tune_mixture(members: Sequence[SentenceScorer], lines: Iterable[str]) -> list[float]:
    """The weights maximising the likelihood of ``lines`` (EM, elman.models.mixture)."""
    flat: list[list[np.ndarray]] = [[] for _ in members]
    seen = 0
    for chunk in chunks(lines, CHUNK):
        parts = [m.score(chunk) for m in members]
        check_same_tokens(members, parts)
        for store, p in zip(flat, parts, strict=True):
            store.extend(s.logprobs for s in p)
        seen += len(chunk)
    if not seen:
        raise ElmanError("--tune: the file has no lines to tune the mixture on")
    return tune_weights([np.concatenate(f) for f in flat])


# --- loading ---------------------------------------------------------------------------------
def is_arpa(path: str | Path) -> bool:
    """An n-gram model: named ``*.arpa``, a file whose first non-blank line is ``\\data\\``,
    or an elman binary n-gram model (``elman ngram binary``)."""
    p = Path(path)
    if p.suffix.lower() == ".arpa":
        return True
    return p.is_file() and (_first_line(p) == b"\\data\\" or is_binary(p))


def is_model(path: str | Path) -> bool:
    """Whether ``path`` is a model ``elman score`` reads (an ARPA file, a checkpoint or a run
    folder) rather than text to score."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".pt", ".arpa"):
        return True
    if not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (older checkpoints: a pickle, protocol 2+)
    return head.startswith((b"PK\x03\x04", b"\x80")) or is_arpa(p)


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as f:
        for raw in islice(f, 100):  # an ARPA file opens with blank lines at most
            if raw.strip():
                return raw.strip()
    return b""


def load_scorer(
    path: str | Path, device: str | torch.device = "auto", *, batch_size: int = 64
) -> SentenceScorer:
    """The model in ``path``: an ARPA file (by its name or content), else a checkpoint or a run
    folder of an LM or NPLM (``elman.load``); anything else is one line."""
    if not is_model(path):
        why = "not a model" if Path(path).exists() else "no such file"
        raise ElmanError(f"{path}: {why}; a model is an ARPA file, a checkpoint or a run folder")
    if is_arpa(path):
        return NgramScorer(read_model(path), str(path))
    return NeuralScorer(load(path, device, command="elman score"), batch_size=batch_size)


def build_scorer(
    models: Sequence[str | Path],
    *,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    mix_lambda: str = "auto",
    tune: Iterable[str] | None = None,
    dynamic: DynamicSettings | None = None,
    dynamic_stats: Iterable[str] | None = None,
    dynamic_stats_name: str = "--dynamic-stats",
) -> SentenceScorer:
    """One model, or the mixture of several: weights from ``mix_lambda``
    (:func:`parse_mix_lambda`), tuned by EM on the lines ``tune`` when ``auto``, else equal.
    With ``dynamic`` every neural model learns from each line after scoring it
    (:class:`DynamicScorer`; the RMS rule's statistics from the lines ``dynamic_stats``)."""
    if not models:
        raise ElmanError("elman score needs at least one model")
    weights = parse_mix_lambda(mix_lambda, len(models))
    if len(models) == 1 and tune is not None:
        raise ElmanError("--tune tunes a mixture's weights; give two or more models")
    if weights is not None and tune is not None:
        raise ElmanError("--tune tunes the weights that --mix-lambda gives; give one of them")
    members = [load_scorer(m, device, batch_size=batch_size) for m in models]
    if dynamic is not None:
        if tune is not None:
            raise ElmanError("--dynamic with --tune: give the weights with --mix-lambda")
        if not any(isinstance(m, NeuralScorer) for m in members):
            raise ElmanError("--dynamic adapts neural models; give a checkpoint or run folder")
        stats = None if dynamic_stats is None else head(dynamic_stats, dynamic.stats_tokens)
        members = [
            DynamicScorer(m, dynamic, stats, dynamic_stats_name)
            if isinstance(m, NeuralScorer)
            else m
            for m in members
        ]
    if len(members) == 1:
        return members[0]
    equal = [1.0 / len(members)] * len(members)
    MixtureScorer(members, equal)  # the levels agree: checked before tuning
    if weights is None:
        weights = tune_mixture(members, tune) if tune is not None else equal
    return MixtureScorer(members, weights)


# --- scoring streams -------------------------------------------------------------------------
def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """``lines`` in lists of ``size`` (the last may be shorter), read lazily."""
    it = iter(lines)
    while chunk := list(islice(it, size)):
        yield chunk


def score_lines(
    scorer: SentenceScorer, lines: Iterable[str], *, chunk_size: int = CHUNK
) -> Iterator[SentenceScore]:
    """The :class:`SentenceScore` of every line, in order, ``chunk_size`` lines at a time.

    A sentence whose log-probability is not finite (a model giving a token probability 0, or
    damaged weights) stops with one line naming the input line and the token.
    """
    number = 0
    for chunk in chunks(lines, chunk_size):
        for scores in scorer.score(chunk):
            number += 1
            yield sentence_score(number, scores, scorer.name)


def sentence_score(line: int, scores: TokenScores, name: str) -> SentenceScore:
    """Sum one sentence's token scores; a non-finite one is an error (module docstring)."""
    total = float(scores.logprobs.sum())
    if not math.isfinite(total):
        bad = int(np.flatnonzero(~np.isfinite(scores.logprobs))[0])
        raise ElmanError(
            f"line {line}: {name} gives token {bad + 1} ({scores.tokens[bad]!r}) log P = "
            f"{scores.logprobs[bad]}; a score that is not a finite number is not reported (an "
            "ARPA file giving it probability 0, or damaged weights)"
        )
    if -total / len(scores.tokens) > MAX_LOG_PPL:
        raise ElmanError(
            f"line {line}: {name} gives it {total / LN10:.1f} (log10) over {len(scores.tokens)} "
            "tokens: its perplexity is beyond the largest floating-point number"
        )
    return SentenceScore(line, total, len(scores.tokens), int(scores.unknown.sum()), scores)
