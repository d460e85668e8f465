"""Ensembles decode as one model: a model with itself translates exactly as the model alone,
two models' step is the mean of their distributions, and the search invariants still hold."""

from __future__ import annotations

import math

import pytest
import torch

from elman.data.pair_batches import make_batch, pad_sources
from elman.data.subword import BOS_ID, EOS_ID
from elman.inference.ensemble import EnsembleModel, mean_of_probabilities
from elman.inference.search import (
    NEVER_WRITTEN,
    DecodeConfig,
    beam_search,
    greedy_search,
    length_penalty,
    max_lengths,
    next_log_probs,
)
from elman.inference.translate import nbest_ids, translate_ids
from elman.models.seq2seq import KINDS
from inference.test_search import SOURCES, TableModel, model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beam", [1, 4])
def test_a_model_with_itself_translates_exactly_as_the_model(kind, beam):
    m = model(kind, 8)
    cfg = DecodeConfig(beam=beam, max_len_ratio=1.5, max_len_extra=3)
    assert translate_ids(EnsembleModel([m, m]), SOURCES, cfg) == translate_ids(m, SOURCES, cfg)
    alone = nbest_ids(m, SOURCES, cfg, beam)
    twice = nbest_ids(EnsembleModel([m, m, m]), SOURCES, cfg, beam)
    for a, b in zip(alone, twice, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.log_prob for h in a] == pytest.approx([h.log_prob for h in b], abs=1e-5)


def test_two_models_step_with_the_mean_of_their_distributions():
    a, b = TableModel(vocab=9, seed=1), TableModel(vocab=9, seed=2)
    ens = EnsembleModel([a, b])
    src, lengths = torch.tensor([[5, EOS_ID], [6, EOS_ID]]), torch.tensor([2, 2])
    memory, state = ens.encode(src, lengths)
    prev = torch.full((2,), BOS_ID)
    for tokens in ([4, 6], [5, 5], [8, 4]):  # three steps along fixed prefixes
        logp, state = next_log_probs(ens, prev, state, memory)
        prefixes = state.members[0].prefixes
        for row, prefix in enumerate(prefixes):
            expected = torch.zeros(9)
            for table in (a, b):
                logits = table.logits(prefix)
                logits[list(NEVER_WRITTEN)] = -math.inf
                expected += torch.softmax(logits, 0) / 2
            torch.testing.assert_close(logp[row].exp(), expected)
        prev = torch.tensor(tokens)


class MeanTable(TableModel):
    """The two tables' mean distribution as one model, for the exhaustive check."""

    def __init__(self, a: TableModel, b: TableModel) -> None:
        super().__init__(a.vocab, 0)
        self.a, self.b = a, b

    def logits(self, prefix):
        rows = []
        for t in (self.a, self.b):
            row = t.logits(prefix)
            row[list(NEVER_WRITTEN)] = -math.inf
            rows.append(torch.log_softmax(row, 0))
        return mean_of_probabilities(rows)


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_over_an_ensemble_finds_the_best_of_the_mean_model(seed):
    a, b = TableModel(vocab=7, seed=seed), TableModel(vocab=7, seed=seed + 10)
    src, lengths = torch.tensor([[5, EOS_ID]]), torch.tensor([2])
    found = beam_search(EnsembleModel([a, b]), src, lengths, 40, [3], alpha=1.0)[0]
    mean = beam_search(MeanTable(a, b), src, lengths, 40, [3], alpha=1.0)[0]
    assert [h.tokens for h in found] == [h.tokens for h in mean]
    assert found[0].log_prob == pytest.approx(mean[0].log_prob, abs=1e-5)
    assert found[0].score == pytest.approx(found[0].log_prob / length_penalty(found[0].length, 1.0))


@pytest.mark.parametrize("beam", [1, 3])
def test_ensemble_batches_change_nothing_and_beam_one_is_greedy(beam):
    ens = EnsembleModel([model("attention", 9), model("conditioned", 10), model("plain", 11)])
    cfg = DecodeConfig(beam=beam, max_len_ratio=1.5, max_len_extra=3)
    together = translate_ids(ens, SOURCES, cfg, batch_size=64)
    assert together == [translate_ids(ens, [s], cfg, batch_size=1)[0] for s in SOURCES]
    src, lengths = pad_sources(SOURCES)
    limit = max_lengths(lengths, 1.5, 3)
    greedy = greedy_search(ens, src, lengths, limit)
    assert [h[0].tokens for h in beam_search(ens, src, lengths, 1, limit)] == greedy


def test_mean_of_probabilities_is_stable_and_exact_for_equal_members():
    x = torch.tensor([-1000.0, -0.5, -math.inf, 0.0])
    assert torch.equal(mean_of_probabilities([x, x]), x)  # exp(0) = 1, log 1 = 0: exact
    y = torch.tensor([-1001.0, -math.inf, -math.inf, -2.0])
    got = mean_of_probabilities([x, y])
    assert got[0].item() == pytest.approx(-1000 + math.log((1 + math.exp(-1)) / 2))
    assert got[1].item() == pytest.approx(-0.5 - math.log(2)) and got[2].item() == -math.inf


def test_ensemble_loss_is_the_cross_entropy_of_the_mean_distribution():
    a, b = model("attention", 12), model("conditioned", 13)
    targets = [[5, 6, 7], [8], [4, 4], [6, 5, 4, 8], [7]]
    batch = make_batch(SOURCES, targets)
    with torch.no_grad():
        one, n, _ = EnsembleModel([a]).loss(batch)
        alone, m, _ = a.loss(batch)
        assert n == m and one.item() == pytest.approx(alone.item(), rel=1e-5)
        both, _, _ = EnsembleModel([a, b]).loss(batch)
        la, _ = a(batch.src, batch.src_lengths, batch.tgt_in)
        lb, _ = b(batch.src, batch.src_lengths, batch.tgt_in)
        p = (la.softmax(-1) + lb.softmax(-1)) / 2  # (B, T, V)
        real = batch.tgt_out >= 0
        expected = -p[real].gather(1, batch.tgt_out[real].unsqueeze(1)).log().sum()
    assert both.item() == pytest.approx(expected.item(), rel=1e-5)


def test_decoding_leaves_the_members_in_evaluation_mode():
    members = [model("attention", 14), model("plain", 15)]
    ens = EnsembleModel(members)
    assert not ens.training  # its flag follows the members: decoding restores it
    translate_ids(ens, SOURCES, DecodeConfig(beam=2))
    assert not any(m.training for m in members)
