"""Decoding a translation model: batched greedy search and batched beam search.

Both read a model through two calls (:class:`SearchModel`, as
:class:`elman.models.seq2seq.Seq2Seq` has them; beam search also calls ``memory.repeat(K)``
and ``state.select(rows)`` to lay out and reorder the beams)::

    memory, state = model.encode(src, src_lengths)          once per batch
    logits, state, _ = model.step(prev, state, memory)       once per output piece

and never write ``<pad>``, ``<s>`` or ``<unk>`` (their scores are masked before the softmax, so
every output detokenizes to plain text).

**Greedy**: y_t = argmax_y log P(y | y_<t, x) until ``</s>``.

**Beam search** keeps the K best unfinished prefixes of every sentence. At each step every prefix
is extended by every piece and the 2K best extensions (by summed log-probability) are looked at
in order: an extension by ``</s>`` among the first K is a finished hypothesis, the first K others
are the new beam. Finished hypotheses are ranked by the length-normalised score of Wu et al.
2016 (GNMT)::

    score(Y) = log P(Y | x) / lp(Y),    lp(Y) = ((5 + |Y|) / 6)^α

with |Y| counting ``</s>``; α = 0 ranks by log P alone, larger α favours longer outputs. A
sentence is done once it has K finished hypotheses and the K-th best of them scores at least
what the best live prefix would score if it ended now (as Hugging Face's beam search; stopping
at the first K finished instead would keep poor early ``</s>`` endings when the vocabulary is
small and ``</s>`` ranks among the K best by default). With K = 1 this is greedy search, piece
for piece (tested).

**Length limit**: a sentence stops after max_len = ⌊ratio · |x| + extra⌋ pieces (|x| without
``</s>``); a beam still unfinished then is finished as it stands.

**Blocking repeated n-grams** (``no_repeat_ngram`` = N > 0, fairseq's ``--no-repeat-ngram-size``):
a piece that would complete an N-gram the prefix already holds gets log P = −inf, after the
softmax (the other pieces keep their log-probabilities: the distribution is not renormalised, as
in fairseq). With N = 1 no piece is written twice; ``</s>`` is never blocked. Greedy and beam
search block alike, so beam 1 is still greedy.

**Ensembles** are one more :class:`SearchModel` (:class:`elman.inference.ensemble.EnsembleModel`),
so this code never asks how many models it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import torch
from torch import Tensor

from elman.data.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from elman.errors import ElmanError
from elman.inference.limits import (
    MAX_BEAM,
    MAX_LEN_EXTRA,
    MAX_LEN_RATIO,
    MAX_LENGTH_PENALTY,
    MAX_NO_REPEAT_NGRAM,
    MAX_SOURCE_LEN,
)

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

NEVER_WRITTEN = (PAD_ID, BOS_ID, UNK_ID)


class SearchMemory(Protocol):
    """What a model reads of the source batch, one row per sentence."""

    def repeat(self, k: int) -> Self:
        """Every row k times in a row (rows i·k … i·k + k − 1 are sentence i)."""
        ...


class SearchState(Protocol):
    """A model's decoder state, one row per prefix."""

    def select(self, index: Tensor) -> Self:
        """The rows ``index`` (N',) of this state."""
        ...


MemoryT = TypeVar("MemoryT", bound=SearchMemory)
StateT = TypeVar("StateT", bound=SearchState)


class SearchModel(Protocol[MemoryT, StateT]):
    """The two calls search makes of a model (module docstring)."""

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[MemoryT, StateT]:
        """src (B, S), src_lengths (B,) -> the memory and the decoder's initial state."""
        ...

    def step(
        self, prev: Tensor, state: StateT, memory: MemoryT
    ) -> tuple[Tensor, StateT, Tensor | None]:
        """prev (N,) the previous pieces -> logits (N, V), the new state, and attention
        weights (N, S) or None."""
        ...


@dataclass
class DecodeConfig:
    """How to decode; every value is checked against its range (:mod:`elman.inference.limits`).

    The messages start with the field's name: the recipe reader and ``elman translate`` turn
    it into the key or option the user wrote.
    """

    beam: int = 5  # K; 1 = greedy
    length_penalty: float = 1.0  # α of lp(Y) = ((5 + |Y|) / 6)^α; 0: none
    max_len_ratio: float = 1.5  # at most ⌊ratio · source pieces + extra⌋ output pieces
    max_len_extra: int = 10
    max_source_len: int = 250  # `elman translate`: longer inputs are cut to this many pieces
    no_repeat_ngram: int = 0  # N > 0: never write an N-gram twice in one output; 0: off

    def __post_init__(self) -> None:
        # `not low <= x <= high` rather than `x < low`: a NaN fails every comparison.
        _check("beam", self.beam, 1, MAX_BEAM, "1 = greedy")
        _check("length_penalty", self.length_penalty, 0.0, MAX_LENGTH_PENALTY, "0 = none")
        _check("max_len_ratio", self.max_len_ratio, 0.0, MAX_LEN_RATIO, "1.5 is usual")
        _check("max_len_extra", self.max_len_extra, 0, MAX_LEN_EXTRA, "10 is usual")
        _check("max_source_len", self.max_source_len, 1, MAX_SOURCE_LEN, "250 is usual")
        _check("no_repeat_ngram", self.no_repeat_ngram, 0, MAX_NO_REPEAT_NGRAM, "0 = off")
        if self.max_len_ratio == 0 and self.max_len_extra == 0:
            raise ValueError("max_len_ratio and max_len_extra are both 0: no output possible")


def _check(name: str, value: float, low: float, high: float, note: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be in {low:g} … {high:g} ({note}), got {value!r}")
    if isinstance(low, int) and not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number in {low} … {high}, got {value!r}")


@dataclass
class Hypothesis:
    """One output: its pieces (no ``</s>``), log P(Y | x), the length-normalised score, and
    |Y| as the length penalty counts it (the pieces, plus ``</s>`` when it was written; an
    output cut at the length limit has none)."""

    tokens: list[int]
    log_prob: float
    score: float
    length: int


def length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016)."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: Tensor, ratio: float, extra: int) -> list[int]:
    """⌊ratio · |x| + extra⌋ for every source (``src_lengths`` count ``</s>``), at least 1."""
    return [max(1, int(ratio * (n - 1) + extra)) for n in src_lengths.tolist()]


def next_log_probs(
    model: SearchModel[MemoryT, StateT], prev: Tensor, state: StateT, memory: MemoryT
) -> tuple[Tensor, StateT]:
    """log P(· | prefix) (N, V) with the pieces never written masked out, and the new state."""
    logits, state, _ = model.step(prev, state, memory)
    logits[:, list(NEVER_WRITTEN)] = float("-inf")
    return torch.log_softmax(logits.float(), dim=-1), state


def repeated_ngram_ends(history: Sequence[int], n: int) -> set[int]:
    """The pieces that would complete an n-gram ``history`` already holds: the last piece of
    every earlier n-gram whose first n − 1 pieces are the last n − 1 of ``history``.

    history = a b c a b, n = 3: the context is "a b", which "a b c" began, so c is blocked.
    """
    if n <= 0 or len(history) < n:
        return set()
    context = list(history[len(history) - n + 1 :])  # the last n − 1 pieces ([] for n = 1)
    return {
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if list(history[i : i + n - 1]) == context
    }


def block_repeats(logp: Tensor, histories: Sequence[Sequence[int]], n: int) -> None:
    """Set ``logp`` (N, V) to −inf, in place, where row i's piece would repeat an n-gram of
    ``histories[i]`` (module docstring); n = 0 blocks nothing."""
    if n <= 0:
        return
    rows: list[int] = []
    pieces: list[int] = []
    for row, history in enumerate(histories):
        banned = repeated_ngram_ends(history, n)
        rows += [row] * len(banned)
        pieces += banned
    if rows:
        logp[rows, pieces] = float("-inf")


@torch.no_grad()
def greedy_search(
    model: SearchModel[MemoryT, StateT],
    src: Tensor,
    src_lengths: Tensor,
    max_len: list[int],
    no_repeat: int = 0,
) -> list[list[int]]:
    """The greedy output pieces (no ``</s>``) of every source of the batch; ``no_repeat`` = N
    blocks repeated N-grams (module docstring)."""
    memory, state = model.encode(src, src_lengths)
    B = src.shape[0]
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(max(max_len)):
        logp, state = next_log_probs(model, prev, state, memory)
        block_repeats(logp, out, no_repeat)
        prev = logp.argmax(dim=1)
        for b, token in enumerate(prev.tolist()):
            if done[b]:
                continue
            if token == EOS_ID:
                done[b] = True
                continue
            out[b].append(token)
            done[b] = len(out[b]) >= max_len[b]
        if all(done):
            break
    return out


class _Beams:
    """The bookkeeping of one sentence's beam: its finished hypotheses and its limits."""

    def __init__(self, k: int, max_len: int, alpha: float) -> None:
        self.k, self.max_len, self.alpha = k, max_len, alpha
        self.finished: list[Hypothesis] = []
        self.done = False

    def finish(self, tokens: list[int], log_prob: float, with_eos: bool) -> None:
        length = len(tokens) + int(with_eos)
        lp = length_penalty(length, self.alpha)
        self.finished.append(Hypothesis(tokens, log_prob, log_prob / lp, length))

    def advance(
        self, cands: list[tuple[float, int, int]], history: list[list[int]], t: int
    ) -> list[tuple[float, int, int]]:
        """From the 2K best (score, beam, piece) in order, file the finished ones and return
        the new beam (at most K). ``history[beam]`` is that beam's prefix, ``t`` the step."""
        alive: list[tuple[float, int, int]] = []
        for rank, (score, beam, piece) in enumerate(cands):
            if score == float("-inf"):
                break
            if piece == EOS_ID:
                if rank < self.k:
                    self.finish(history[beam], score, with_eos=True)
            elif len(alive) < self.k:
                alive.append((score, beam, piece))
        if t + 1 >= self.max_len:  # out of length: the beam ends as it stands
            for score, beam, piece in alive:
                self.finish([*history[beam], piece], score, with_eos=False)
            alive = []
        self.done = not alive or self._cannot_improve(alive[0][0], t + 1)
        return alive

    def _cannot_improve(self, best_alive: float, length: int) -> bool:
        """K finished, and the K-th best scores at least as high as the best live prefix
        would if it ended now (its log-probability can only fall)."""
        if len(self.finished) < self.k:
            return False
        kth = sorted((h.score for h in self.finished), reverse=True)[self.k - 1]
        return kth >= best_alive / length_penalty(length, self.alpha)

    def best(self, n: int) -> list[Hypothesis]:
        return sorted(self.finished, key=lambda h: -h.score)[:n]


@torch.no_grad()
def beam_search(
    model: SearchModel[MemoryT, StateT],
    src: Tensor,
    src_lengths: Tensor,
    beam: int,
    max_len: list[int],
    alpha: float = 1.0,
    n_best: int = 1,
    no_repeat: int = 0,
) -> list[list[Hypothesis]]:
    """The ``n_best`` (<= beam) hypotheses of every source, best first; ``no_repeat`` = N
    blocks repeated N-grams (module docstring)."""
    if not 1 <= n_best <= beam:
        raise ElmanError(f"n_best must be between 1 and the beam size {beam}, got {n_best}")
    B, K = src.shape[0], beam
    memory, state = model.encode(src, src_lengths)
    rows = torch.arange(B, device=src.device).repeat_interleave(K)  # (B·K,) sentence of a row
    memory, state = memory.repeat(K), state.select(rows)
    sentences = [_Beams(K, n, alpha) for n in max_len]
    scores = torch.full((B, K), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # one live prefix (<s>) per sentence at the start
    history: list[list[int]] = [[] for _ in range(B * K)]
    prev = torch.full((B * K,), BOS_ID, dtype=torch.long, device=src.device)
    for t in range(max(max_len)):
        logp, state = next_log_probs(model, prev, state, memory)  # (B·K, V)
        block_repeats(logp, history, no_repeat)
        V = logp.shape[1]
        cand = (scores.view(-1, 1) + logp).view(B, K * V)
        best = cand.topk(min(2 * K, K * V), dim=1)  # values and indices, each (B, 2K)
        top, ids = best.values.tolist(), best.indices.tolist()
        index, pieces, new_scores = [], [], []
        for b, s in enumerate(sentences):
            alive = []
            if not s.done:
                cands = [(sc, i // V, i % V) for sc, i in zip(top[b], ids[b], strict=True)]
                alive = s.advance(cands, history[b * K : (b + 1) * K], t)
            alive += [(float("-inf"), 0, PAD_ID)] * (K - len(alive))  # idle rows
            for score, bm, piece in alive:
                index.append(b * K + bm)
                pieces.append(piece)
                new_scores.append(score)
        if all(s.done for s in sentences):
            break
        history = [[*history[i], p] for i, p in zip(index, pieces, strict=True)]
        select = torch.tensor(index, device=src.device)
        state = state.select(select)
        prev = torch.tensor(pieces, device=src.device)
        scores = torch.tensor(new_scores, device=src.device).view(B, K)
    return [s.best(n_best) for s in sentences]
