"""Greedy and beam search: beam 1 is greedy, n-best lists are sorted, beam search finds the
exhaustive best when the beam holds everything, batches and padding change nothing."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from elman.data.pair_batches import pad_sources
from elman.data.subword import BOS_ID, EOS_ID
from elman.inference.limits import MAX_BEAM
from elman.inference.search import (
    NEVER_WRITTEN,
    DecodeConfig,
    beam_search,
    greedy_search,
    length_penalty,
    max_lengths,
    repeated_ngram_ends,
)
from elman.inference.translate import translate_ids
from elman.models.seq2seq import KINDS, Memory, Seq2Seq, Seq2SeqConfig

SOURCES = [[5, 6, 7, 8], [9], [10, 11], [4, 4, 4, 4, 4, 4, 4], [7, 5]]


def model(kind: str, seed: int) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(
        src_vocab_size=12, tgt_vocab_size=9, kind=kind, cell="gru", embedding_dim=8,
        hidden_size=8, attention_size=8,
    )  # fmt: skip
    m = Seq2Seq(cfg).eval()
    with torch.no_grad():  # sharpen the distributions, so outputs vary in length
        m.output.weight.mul_(4.0)
    return m


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_is_greedy(kind, seed):
    m = model(kind, seed)
    src, lengths = pad_sources(SOURCES)
    limit = max_lengths(lengths, 1.5, 3)
    greedy = greedy_search(m, src, lengths, limit)
    beam = beam_search(m, src, lengths, 1, limit, alpha=0.6)
    assert [h[0].tokens for h in beam] == greedy
    assert all(len(g) <= n for g, n in zip(greedy, limit, strict=True))


@pytest.mark.parametrize("kind", KINDS)
def test_n_best_is_sorted_and_its_first_is_the_one_best(kind):
    m = model(kind, 3)
    src, lengths = pad_sources(SOURCES)
    limit = max_lengths(lengths, 1.5, 3)
    nbest = beam_search(m, src, lengths, 4, limit, alpha=1.0, n_best=4)
    best = beam_search(m, src, lengths, 4, limit, alpha=1.0)
    for hyps, one in zip(nbest, best, strict=True):
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and len(hyps) == 4
        assert hyps[0] == one[0]
        for h in hyps:
            assert h.log_prob <= h.score <= 0  # lp >= 1 for alpha = 1
            assert not set(h.tokens) & set(NEVER_WRITTEN) and EOS_ID not in h.tokens


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beam", [1, 3])
def test_batch_composition_and_padding_never_change_a_translation(kind, beam):
    m = model(kind, 4)
    cfg = DecodeConfig(beam=beam, max_len_ratio=1.5, max_len_extra=3)
    together = translate_ids(m, SOURCES, cfg, batch_size=64)
    alone = [translate_ids(m, [s], cfg, batch_size=1)[0] for s in SOURCES]
    pairs = translate_ids(m, SOURCES[::-1], cfg, batch_size=2)[::-1]
    assert together == alone == pairs


class TableModel(torch.nn.Module):
    """A fake decoder: log P(y | prefix) from a fixed random table keyed by the prefix."""

    def __init__(self, vocab: int, seed: int) -> None:
        super().__init__()
        self.vocab, self.seed = vocab, seed

    def logits(self, prefix: tuple[int, ...]) -> torch.Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, prefix)) % (2**31))
        return 3 * torch.randn(self.vocab, generator=g)

    def encode(self, src, lengths):
        return Memory(mask=src > 0), _Prefixes([() for _ in range(src.shape[0])])

    def step(self, prev, state, memory):
        prefixes = [
            p if t == BOS_ID else (*p, t)
            for p, t in zip(state.prefixes, prev.tolist(), strict=True)
        ]
        return torch.stack([self.logits(p) for p in prefixes]), _Prefixes(prefixes), None


class _Prefixes:
    def __init__(self, prefixes):
        self.prefixes = prefixes

    def select(self, index):
        return _Prefixes([self.prefixes[i] for i in index.tolist()])


def exhaustive_best(m: TableModel, max_len: int, alpha: float) -> list[int]:
    """Score every output of at most max_len pieces (ending in </s>, or cut at max_len)."""
    allowed = [y for y in range(m.vocab) if y not in NEVER_WRITTEN and y != EOS_ID]
    best, best_score = None, -math.inf
    for n in range(max_len + 1):
        for ys in itertools.product(allowed, repeat=n):
            logp = 0.0
            for t in range(n + (1 if n < max_len else 0)):
                row = m.logits(tuple(ys[:t]))
                row[list(NEVER_WRITTEN)] = -math.inf
                y = ys[t] if t < n else EOS_ID
                logp += torch.log_softmax(row, 0)[y].item()
            score = logp / length_penalty(n + (1 if n < max_len else 0), alpha)
            if score > best_score:
                best, best_score = list(ys), score
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_beam_that_holds_everything_finds_the_exhaustive_best(seed, alpha):
    m = TableModel(vocab=7, seed=seed)  # 3 writable pieces and </s>
    src = torch.tensor([[5, EOS_ID]])
    found = beam_search(m, src, torch.tensor([2]), 40, [3], alpha=alpha)[0][0].tokens
    assert found == exhaustive_best(m, 3, alpha)


def test_lengths_and_config_checks():
    assert max_lengths(torch.tensor([1, 11]), 1.5, 10) == [10, 25]
    assert max_lengths(torch.tensor([1]), 0.5, 0) == [1]
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(7, 0.0) == 1.0
    for bad in ({"beam": 0}, {"length_penalty": -1}, {"max_len_ratio": 0, "max_len_extra": 0}):
        with pytest.raises(ValueError):
            DecodeConfig(**bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"beam": 100_000}, r"beam must be in 1 … 100 \(1 = greedy\), got 100000"),
        ({"beam": 2.5}, "beam must be a whole number"),
        ({"beam": True}, "beam must be in"),
        ({"length_penalty": math.nan}, "length_penalty must be in 0 … 10"),
        ({"length_penalty": math.inf}, "length_penalty must be in 0 … 10"),
        ({"max_len_ratio": math.nan}, "max_len_ratio must be in 0 … 10"),
        ({"max_len_ratio": 1e9}, "max_len_ratio must be in 0 … 10"),
        ({"max_len_extra": 10**9}, "max_len_extra must be in 0 … 1000"),
        ({"max_source_len": 0}, "max_source_len must be in 1 … 100000"),
        ({"no_repeat_ngram": -1}, r"no_repeat_ngram must be in 0 … 100 \(0 = off\)"),
        ({"no_repeat_ngram": 2.0}, "no_repeat_ngram must be a whole number"),
    ],
)
def test_decode_settings_are_finite_and_capped_with_the_cap_in_the_message(bad, message):
    with pytest.raises(ValueError, match=message):
        DecodeConfig(**bad)
    assert DecodeConfig(beam=MAX_BEAM).beam == 100  # the cap itself is allowed


def test_repeated_ngram_ends_worked_example():
    history = [1, 2, 3, 1, 2]  # "1 2" began "1 2 3": 3 would repeat it
    assert repeated_ngram_ends(history, 3) == {3}
    assert repeated_ngram_ends(history, 2) == {3}  # "2" was followed by 3
    assert repeated_ngram_ends(history, 1) == {1, 2, 3}  # every piece written
    assert repeated_ngram_ends(history, 0) == set() and repeated_ngram_ends([4], 2) == set()
    assert repeated_ngram_ends([4, 4], 2) == {4}


def ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


REPEATING = {"plain": 5, "conditioned": 6, "attention": 5}  # seeds whose outputs repeat pieces
LONG = [[4] * 10, *SOURCES]  # up to 18 output pieces: more than the 5 writable ones


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 2])
def test_no_repeat_ngram_blocks_repeats_and_beam_one_is_still_greedy(kind, n):
    m = model(kind, REPEATING[kind])
    src, lengths = pad_sources(LONG)
    limit = max_lengths(lengths, 1.5, 3)
    greedy = greedy_search(m, src, lengths, limit, no_repeat=n)
    assert [h[0].tokens for h in beam_search(m, src, lengths, 1, limit, no_repeat=n)] == greedy
    beams = beam_search(m, src, lengths, 4, limit, n_best=4, no_repeat=n)
    outputs = greedy + [h.tokens for hyps in beams for h in hyps]
    for tokens in outputs:
        assert len(set(ngrams(tokens, n))) == len(ngrams(tokens, n)), tokens


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beam", [1, 3])
def test_no_repeat_ngram_zero_is_off(kind, beam):
    m = model(kind, REPEATING[kind])
    cfg = DecodeConfig(beam=beam, max_len_ratio=1.5, max_len_extra=3)
    off = translate_ids(m, LONG, dataclasses.replace(cfg, no_repeat_ngram=0))
    assert off == translate_ids(m, LONG, cfg)  # 0 is the default
    assert any(len(set(t)) < len(t) for t in off)  # these outputs repeat pieces ...
    on = translate_ids(m, LONG, dataclasses.replace(cfg, no_repeat_ngram=1))
    assert all(len(set(t)) == len(t) for t in on)  # ... which N = 1 blocks


def test_hypothesis_length_counts_eos_and_gives_the_score():
    m = model("attention", 7)
    src, lengths = pad_sources(SOURCES)
    limit = max_lengths(lengths, 1.5, 3)
    for alpha in (0.0, 0.6):
        for hyps, n in zip(beam_search(m, src, lengths, 3, limit, alpha, 3), limit, strict=True):
            for h in hyps:
                assert h.length in (len(h.tokens) + 1, n)  # </s> counted, or cut at the limit
                assert h.score == pytest.approx(h.log_prob / length_penalty(h.length, alpha))
