"""NgramLM: an n-gram language model held as the tables of an ARPA file.

For each order n the model keeps the listed n-grams (sorted integer keys
``context_row * V + word``, see :mod:`elman.models.ngram.counts`), their log10
probabilities and, below the highest order, their log10 back-off weights.  Scoring
uses the ARPA back-off rule (SRILM, KenLM) for a word w after history h:

    log10 p(w | h_1..h_m) = log10 P(h_j..h_m w) + sum_{i < j} log10 b(h_i..h_m)

where h_j..h_m w is the longest listed n-gram ending in w and b(.) is 1 for a
context that is not listed.  For the interpolated models built here this equals the
interpolated probability (module :mod:`elman.models.ngram.smoothing`).

Perplexity follows KenLM's ``query``: over every predicted token (each word and each
</s>, never <s>), PPL = 10 ** (-sum log10 p / (words + sentences)).  A word missing
from the vocabulary is scored as <unk> and counted as an OOV; the perplexity without
OOVs drops those tokens from the sum and the count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elman.errors import ElmanError
from elman.models.ngram import probing
from elman.models.ngram.counts import (
    BOS,
    EOS,
    SPECIALS,
    UNK,
    Encoded,
    build_vocab,
    count_ngrams,
    encode,
    prune_mask,
    quiet,
    select,
    warn,
)
from elman.models.ngram.smoothing import PRUNABLE, check_smoothing, estimate

LN10 = float(np.log(10.0))
# Counting makes one table per order: an order of thousands would only spend time and memory on
# copies of whole sentences. KenLM is compiled for at most 6 by default.
MAX_ORDER = 20


def find_rows(keys: np.ndarray, context_rows: np.ndarray, words: np.ndarray, V: int) -> np.ndarray:
    """Row of each n-gram (context row, word) in a sorted key table, or -1 when it is
    not listed (or its context row is -1)."""
    query = np.asarray(context_rows, dtype=np.int64) * V + words  # can pass 2**31
    if len(keys) == 0:  # an order with no n-grams (a corpus of short sentences)
        return np.full(len(query), -1, dtype=np.int64)
    if len(query) > 1000:
        # Binary search is memory-bound; queries in sorted order walk the table in
        # order and hit the cache, several times faster than in text order.
        order = np.argsort(query)
        at = np.empty(len(query), dtype=np.int64)
        at[order] = np.searchsorted(keys, query[order])
    else:
        at = np.searchsorted(keys, query)
    at = np.minimum(at, len(keys) - 1)
    return np.where((keys[at] == query) & (context_rows >= 0), at, -1)


@dataclass(frozen=True)
class NgramConfig:
    """How to build an n-gram model.

    Attributes:
        order: N, the longest n-gram (N - 1 words of history).
        smoothing: one of ``ml``, ``addk``, ``abs``, ``kn``, ``mkn``.
        k: the pseudo-count of ``addk`` (1 = Laplace).
        prune: count thresholds for orders 1, 2, ... as KenLM's ``lmplz --prune``: an
            n-gram of order n whose raw count is at most the n-th value is pruned; at most
            ``order`` values, non-decreasing, the last one repeated for the orders after it;
            () or all zeros: no pruning.  The unigrams <unk>, <s>, </s> are never pruned.
        limit_vocab: as ``lmplz --limit_vocab_file``: every n-gram with a word outside this
            set is pruned (<unk>, <s>, </s> are always in); None: no limit.
        Pruning needs ``kn`` or ``mkn`` (see :func:`~elman.models.ngram.smoothing.estimate`).
    """

    order: int = 5
    smoothing: str = "mkn"
    k: float = 1.0
    prune: tuple[int, ...] = ()
    limit_vocab: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.order, int) or not 1 <= self.order <= MAX_ORDER:
            raise ElmanError(
                f"order must be an integer in 1 … {MAX_ORDER}, got {self.order!r} "
                "(5 is usual; past 10 the counts only repeat the corpus)"
            )
        check_smoothing(self.smoothing)
        if not (math.isfinite(self.k) and self.k > 0):  # inf would give NaN probabilities
            raise ElmanError(
                f"k (the add-k pseudo-count) must be a finite number > 0, got {self.k!r}"
            )
        self._check_pruning()

    def _check_pruning(self) -> None:
        shown = " ".join(map(str, self.prune))
        if not isinstance(self.prune, tuple) or not all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in self.prune
        ):
            raise ElmanError(f"prune thresholds must be integers >= 0, got {self.prune!r}")
        if len(self.prune) > self.order:
            raise ElmanError(
                f"prune: {len(self.prune)} thresholds ({shown}) for a {self.order}-gram model; "
                "give at most one per order, from the unigrams up"
            )
        if any(a > b for a, b in zip(self.prune, self.prune[1:], strict=False)):
            raise ElmanError(
                f"prune thresholds must be non-decreasing from order 1 up, got {shown} "
                "(a longer n-gram never occurs more often than its parts, as in KenLM)"
            )
        if self.limit_vocab is not None:
            if not isinstance(self.limit_vocab, frozenset):
                raise ElmanError(
                    f"limit_vocab must be a frozenset of words, got {type(self.limit_vocab)}"
                )
            if not self.limit_vocab - {UNK, BOS, EOS}:
                raise ElmanError("limit_vocab has no words: every word would be pruned")
        if self.prunes and self.smoothing not in PRUNABLE:
            raise ElmanError(
                f"pruning (prune, limit_vocab) needs Kneser-Ney smoothing ({' or '.join(PRUNABLE)}"
                f"), not {self.smoothing!r}: it hands the pruned n-grams' counts to the back-off"
            )

    @property
    def prunes(self) -> bool:
        """Whether any n-gram can be pruned (a threshold above 0 or a vocabulary limit)."""
        return any(self.prune) or self.limit_vocab is not None

    def thresholds(self) -> tuple[int, ...]:
        """One threshold per order 1..N: ``prune`` padded with its last value (KenLM)."""
        given = self.prune or (0,)
        return given + (given[-1],) * (self.order - len(given))


@dataclass
class Perplexity:
    """The result of scoring a text (see the module docstring for the conventions)."""

    perplexity: float  # over all predicted tokens, OOVs scored as <unk>
    perplexity_no_oov: float  # OOV tokens left out of the sum and the count
    log10_prob: float  # sum of log10 p over all predicted tokens
    tokens: int  # words + sentences (one </s> each)
    words: int
    sentences: int
    oovs: int


class NgramLM:
    """An n-gram model: vocabulary, and per order the listed n-grams with log10 p / b.

    Args:
        vocab: the words; the unigram table has one row per word, in this order.
            Must contain <s> and </s>; <unk> is added (log10 p = -100) if absent.
        keys: per order n >= 2, sorted int64 keys ``context_row * V + word``.
        logp: per order, log10 p of each listed n-gram (order 1: one per word).
        logbo: per order n < N, log10 back-off weight of each listed n-gram.
        hash_index: per order n >= 2, the hash index of its keys (:mod:`.probing`) or None;
            orders without one are searched in the sorted keys (:meth:`build_index` makes
            them; a binary model file holds them).
    """

    def __init__(
        self,
        vocab: list[str],
        keys: list[np.ndarray],
        logp: list[np.ndarray],
        logbo: list[np.ndarray],
        hash_index: list[np.ndarray | None] | None = None,
    ) -> None:
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        for special in (BOS, EOS):
            if special not in self.index:
                raise ElmanError(f"the model's vocabulary has no {special}; not a sentence model")
        if UNK not in self.index:  # KenLM does the same for models without <unk>
            warn("the model has no <unk>; unknown words get log10 p = -100 (as in KenLM)")
            self.index[UNK] = len(self.vocab)
            self.vocab.append(UNK)
            logp = [np.append(logp[0], -100.0), *logp[1:]]
            if logbo:
                logbo = [np.append(logbo[0], 0.0), *logbo[1:]]
            keys = [k + (k // (len(self.vocab) - 1)) for k in keys]  # widen V by one
            hash_index = None  # of the keys before they were widened
        self.keys = [np.arange(len(self.vocab), dtype=np.int64), *keys]
        self.hash_index: list[np.ndarray | None] = [None, *(hash_index or [None] * len(keys))]
        self.logp = [np.asarray(x, dtype=np.float64) for x in logp]
        self.logbo = [np.asarray(x, dtype=np.float64) for x in logbo]
        self.unk_id, self.bos_id, self.eos_id = (self.index[w] for w in (UNK, BOS, EOS))
        self.discounts: list[tuple[float, ...]] = []  # per order, set by build()
        if not (len(self.keys) == len(self.logp) == len(self.logbo) + 1 == len(self.hash_index)):
            raise ValueError("keys, logp, logbo and hash_index must cover the same orders")

    # --- construction -----------------------------------------------------------
    @classmethod
    def build(
        cls,
        lines: Iterable[str],
        config: NgramConfig,
        phase: Callable[[str], None] = quiet,
        memory: int | None = None,
        temp_dir: str | Path | None = None,
    ) -> NgramLM:
        """Count ``lines`` (one sentence each) and smooth them as ``config`` says; ``phase``
        is told each step (a large corpus takes minutes: :mod:`elman.progress`).  ``memory``
        bytes bound the sorting of the counts, which beyond it spill to ``temp_dir``
        (lmplz's ``-S`` and ``-T``; :mod:`elman.models.ngram.spill`): the same model."""
        phase("building the vocabulary")
        vocab, enc = build_vocab(lines)
        tables = count_ngrams(enc, config.order, len(vocab), phase, memory, temp_dir)
        keep = None
        if config.prunes:
            allowed = None
            if config.limit_vocab is not None:
                allowed = np.fromiter((w in config.limit_vocab for w in vocab), bool, len(vocab))
                allowed[list(SPECIALS)] = True
            keep = prune_mask(tables, config.thresholds(), allowed)
        logp, logbo, discounts = estimate(
            tables, method=config.smoothing, k=config.k, vocab_size=len(vocab), phase=phase,
            keep=keep,
        )  # fmt: skip
        if keep is not None:  # the survivors, renumbered
            phase("pruning")
            tables = select(tables, keep)
            vocab = [w for w, k in zip(vocab, keep[0], strict=True) if k]
            logp = [x[k] for x, k in zip(logp, keep, strict=True)]
            logbo = [x[k] for x, k in zip(logbo, keep, strict=False)]
        V = len(vocab)
        keys = [t.context.astype(np.int64) * V + t.word for t in tables[1:]]  # int64
        lm = cls(vocab, keys, logp, logbo)
        lm.discounts = discounts
        return lm

    # --- sizes --------------------------------------------------------------------
    @property
    def order(self) -> int:
        return len(self.logp)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def counts(self) -> list[int]:
        """The number of listed n-grams of each order (the ARPA header)."""
        return [len(p) for p in self.logp]

    # --- lookup -------------------------------------------------------------------
    def build_index(self) -> None:
        """Give every order n >= 2 its hash index (:mod:`.probing`): the lookups then take a
        third of binary search's time (PTB test x 20 scores 1.5 times as fast). Costs about 6
        bytes an n-gram, and 0.15 s for the PTB 5-gram's 2.3M."""
        for n in range(2, self.order + 1):
            if self.hash_index[n - 1] is None:
                self.hash_index[n - 1] = probing.build(self.keys[n - 1])

    def _find(self, n: int, context_rows: np.ndarray, words: np.ndarray) -> np.ndarray:
        table = self.hash_index[n - 1]
        if table is None:
            return find_rows(self.keys[n - 1], context_rows, words, self.vocab_size)
        context_rows = np.asarray(context_rows, dtype=np.int64)
        found = probing.lookup(table, self.keys[n - 1], context_rows * self.vocab_size + words)
        return np.where(context_rows >= 0, found, -1)

    def score_encoded(self, enc: Encoded) -> np.ndarray:
        """log10 p of every predicted token of ``enc`` (tokens with pos > 0), in order."""
        ids, pos = enc.ids, enc.pos
        logp = self.logp[0][ids]
        matched = np.ones(len(ids), dtype=np.int8)  # order of the longest listed n-gram
        follows = np.zeros(len(ids), dtype=bool)  # token t + 1 is in t's sentence
        np.greater(pos[1:], 0, out=follows[:-1])
        # at, rows: the tokens t where the m-gram ending at t is listed, and its row. The
        # (m+1)-gram ending at t+1 can be listed only where its context, that m-gram, is.
        at, rows = np.arange(len(ids)), ids.astype(np.int64)
        contexts = []
        for n in range(2, self.order + 1):
            keep = follows[at]
            after, context = at[keep] + 1, rows[keep]
            contexts.append((after, context))
            found = self._find(n, context, ids[after])
            hit = found >= 0
            at, rows = after[hit], found[hit]
            logp[at] = self.logp[n - 1][rows]
            matched[at] = n
        # Back off through every listed context longer than the matched n-gram's.
        for m, (after, context) in enumerate(contexts, start=1):
            use = matched[after] <= m
            logp[after[use]] += self.logbo[m - 1][context[use]]
        return logp[pos > 0]

    def encode(self, lines: Iterable[str]) -> Encoded:
        """``lines`` as ids of this model's vocabulary (unknown words -> <unk>)."""
        return encode(lines, self.index)

    def log10probs(self, lines: Iterable[str]) -> np.ndarray:
        """log10 p of each predicted token of ``lines``: each line's words, then </s>.

        The order matches ``elman.data`` token streams (a line's words, then <eos>),
        so these can be mixed token by token with a neural model's probabilities.
        """
        return self.score_encoded(self.encode(lines))

    def logprobs(self, lines: Iterable[str]) -> np.ndarray:
        """Natural-log probabilities, otherwise as :meth:`log10probs`."""
        return self.log10probs(lines) * LN10

    def perplexity(self, lines: Iterable[str]) -> Perplexity:
        """Perplexity of ``lines`` with and without OOV words, and the counts."""
        enc = self.encode(lines)
        logp = self.score_encoded(enc)
        oov = enc.oov[enc.pos > 0]
        tokens = len(logp)
        total = float(logp.sum())
        kept = tokens - int(oov.sum())
        no_oov = float(logp[~oov].sum())
        return Perplexity(
            perplexity=10.0 ** (-total / tokens) if tokens else float("nan"),
            perplexity_no_oov=10.0 ** (-no_oov / kept) if kept else float("nan"),
            log10_prob=total,
            tokens=tokens,
            words=tokens - enc.sentences,
            sentences=enc.sentences,
            oovs=int(oov.sum()),
        )

    # --- the next-word distribution and sampling -----------------------------------
    def _context_row(self, words: Sequence[int]) -> int:
        """Row of the n-gram ``words`` in its order's table, or -1."""
        row = np.array([words[0]])
        for n, w in enumerate(words[1:], start=2):
            row = self._find(n, row, np.array([w]))
        return int(row[0])

    def next_probs(self, history: Sequence[int]) -> np.ndarray:
        """p(w | history) for every word id w, shape (V,); ``history`` is a list of ids
        (start a sentence with the id of <s>).  Sums to 1; p(<s>) = 0."""
        V = self.vocab_size
        p = 10.0 ** self.logp[0]
        p[self.bos_id] = 0.0
        history = list(history)[len(history) - min(len(history), self.order - 1) :]
        # p_m = b(h_m) p_{m-1}, then the listed (h_m, w) overwrite: the ARPA recursion.
        for m in range(1, len(history) + 1):
            row = self._context_row(history[-m:])
            if row < 0:
                continue
            p *= 10.0 ** self.logbo[m - 1][row]
            keys = self.keys[m]
            lo, hi = np.searchsorted(keys, [row * V, (row + 1) * V])
            p[keys[lo:hi] - row * V] = 10.0 ** self.logp[m][lo:hi]
        return p

    def probs(self, context: Sequence[str]) -> np.ndarray:
        """p(w | context) for every word of :attr:`vocab`; ``context`` is a list of
        words (include "<s>" first for a sentence start; unknown words -> <unk>)."""
        return self.next_probs([self.index.get(w, self.unk_id) for w in context])

    def sample(self, sentences: int, *, seed: int, max_words: int = 100) -> list[str]:
        """``sentences`` sentences drawn word by word from the model, reproducibly.

        A sentence ends at </s> or after ``max_words`` words.
        """
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(sentences):
            history = [self.bos_id]
            words: list[str] = []
            while len(words) < max_words:
                cdf = np.cumsum(self.next_probs(history))
                w = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
                w = min(w, self.vocab_size - 1)
                if w == self.eos_id:
                    break
                words.append(self.vocab[w])
                history.append(w)
            out.append(" ".join(words))
        return out
