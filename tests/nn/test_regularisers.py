"""Locked (variational) dropout and embedding (word-type) dropout against their definitions, and
in the RNN language model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.nn.recurrent import Recurrent
from elman.nn.regularisers import LockedDropout, activation_penalty, embed_with_word_dropout


def test_locked_dropout_draws_one_mask_per_sequence():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    x = torch.ones(7, 3, 10)  # (T, B, D)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))  # the same mask at every time step
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # kept units scaled by 1 / (1 − p)
    assert not torch.equal(y[:, 0], y[:, 1])  # each sequence its own mask
    assert torch.equal(drop.eval()(x), x)


def test_locked_dropout_keeps_the_expectation():
    torch.manual_seed(1)
    y = LockedDropout(0.3).train()(torch.ones(2, 4000, 50))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_word_dropout_drops_whole_word_types():
    torch.manual_seed(2)
    emb = nn.Embedding(20, 6).train()
    inputs = torch.tensor([[3, 5], [3, 7], [5, 3]])  # word 3 three times, 5 twice
    out = embed_with_word_dropout(emb, inputs, 0.5)
    for w in (3, 5, 7):
        rows = out[inputs == w]
        want = emb.weight[w]
        dropped = bool((rows == 0).all())
        assert dropped or torch.allclose(rows, (want * 2).expand_as(rows))
        assert dropped or not (rows == 0).any()  # all or nothing for each word type
    assert torch.equal(embed_with_word_dropout(emb.eval(), inputs, 0.5), emb(inputs))


def test_word_dropout_equals_its_definition_with_the_same_gradients():
    """The rows read, scaled, are diag(m) C indexed (C̃ = diag(m) C, m drawn from the same
    generator): the same outputs bit for bit and the same gradient of C, for a repeated word,
    a dropped one and the padding row (no gradient)."""
    emb = nn.Embedding(50, 7, padding_idx=0).train()
    inputs = torch.tensor([[0, 5, 9], [5, 5, 12], [9, 0, 31]])
    upstream = torch.randn(3, 3, 7)
    torch.manual_seed(9)
    out = embed_with_word_dropout(emb, inputs, 0.4)
    (out * upstream).sum().backward()
    got = emb.weight.grad.clone()
    emb.weight.grad = None
    torch.manual_seed(9)
    mask = emb.weight.new_empty(50, 1).bernoulli_(0.6) / 0.6
    assert 0 < int((mask[inputs.flatten()] == 0).sum()) < inputs.numel()  # some dropped, not all
    want = F.embedding(inputs, emb.weight * mask, padding_idx=0)
    (want * upstream).sum().backward()
    assert torch.equal(out, want)
    torch.testing.assert_close(got, emb.weight.grad, rtol=1e-6, atol=1e-7)
    assert not got[0].any()


def test_the_language_model_trains_with_both_and_scores_without():
    config = RNNLMConfig(
        vocab_size=30, embedding_dim=8, hidden_size=8, num_layers=1, dropout_embedding=0.3,
        dropout_output=0.3, locked_dropout=True, dropout_words=0.2,
    )  # fmt: skip
    model = RNNLM(config)
    assert isinstance(model.drop_embedding, LockedDropout)
    assert isinstance(model.drop_output, LockedDropout)
    assert model.recurrent.locked_dropout  # and between layers
    plain = RNNLM(RNNLMConfig(vocab_size=30, embedding_dim=8, hidden_size=8, num_layers=1))
    assert model.state_dict().keys() == plain.state_dict().keys()  # no new weights
    inputs = torch.randint(0, 30, (5, 2))
    logits, _ = model.train()(inputs)
    logits.sum().backward()
    assert model.embedding.weight.grad is not None
    model.eval()
    first, _ = model(inputs)
    again, _ = model(inputs)
    assert torch.equal(first, again)  # no dropout at evaluation


def test_a_bad_word_dropout_is_refused():
    with pytest.raises(ValueError, match="dropout_words"):
        RNNLMConfig(vocab_size=10, dropout_words=1.0)


def test_ar_and_tar_follow_their_definitions():
    raw = torch.randn(6, 3, 4)
    dropped = raw * (torch.rand_like(raw) > 0.3)
    want = 2.0 * dropped.pow(2).mean() + 0.5 * (raw[1:] - raw[:-1]).pow(2).mean()
    assert activation_penalty(raw, dropped, 2.0, 0.5).item() == pytest.approx(want.item(), rel=1e-6)
    assert activation_penalty(raw, dropped, 0.0, 0.0).item() == 0.0


def test_the_language_models_penalty_is_its_outputs_ar_and_tar():
    torch.manual_seed(3)
    config = RNNLMConfig(
        vocab_size=30, embedding_dim=8, hidden_size=8, num_layers=1, activation_reg=2.0,
        temporal_activation_reg=1.0,
    )  # fmt: skip
    model = RNNLM(config)
    inputs = torch.randint(0, 30, (5, 2))
    batch = SimpleNamespace(inputs=inputs, targets=torch.randint(0, 30, (5, 2)), num_tokens=10)
    model.train().loss(batch)
    got = model.penalty()
    assert got is not None and model.penalty() is None  # read once
    h, _ = model.eval().hidden(inputs)  # no dropout here: h̃ = h
    want = 2.0 * h.pow(2).mean() + 1.0 * (h[1:] - h[:-1]).pow(2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    with torch.no_grad():
        model.train().loss(batch)
    assert model.penalty() is None  # no gradient, no penalty
    plain = RNNLM(RNNLMConfig(vocab_size=30, embedding_dim=8, hidden_size=8, num_layers=1))
    plain.train().loss(batch)
    assert plain.penalty() is None


def test_training_with_ar_and_tar_changes_the_weights(tmp_path, recipe):
    from elman.cli import main

    runs = []
    for extra in (
        [],
        ["--set", "model.activation_reg=2", "--set", "model.temporal_activation_reg=1"],
    ):
        run = tmp_path / f"run{len(runs)}"
        argv = ["train", str(recipe), "--out", str(run), "--set", "train.progress=false", *extra]
        assert main(argv) == 0
        runs.append(torch.load(run / "last.pt", map_location="cpu", weights_only=True))
    a, b = (r["model"] for r in runs)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def _two_layer_lstm(impl: str) -> Recurrent:
    torch.manual_seed(3)
    return Recurrent("lstm", 5, 6, num_layers=2, dropout=0.4, locked_dropout=True, impl=impl)


@pytest.mark.parametrize("impl", ["fused", "unrolled"])
def test_locked_dropout_between_layers_is_one_mask_per_sequence(impl):
    """Layer 2 reads m ⊙ h_t^(1) with one m per sequence: checked against torch.nn.LSTM layers."""
    rec = _two_layer_lstm(impl).train()
    x = torch.randn(7, 3, 5)
    torch.manual_seed(11)
    out, _ = rec(x)
    torch.manual_seed(11)  # the mask is the forward call's first random draw
    mask = torch.empty(1, 3, 6).bernoulli_(0.6) / 0.6
    layers = []
    for k in range(2):
        lstm = nn.LSTM(5 if k == 0 else 6, 6)
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        names = {f"cells.{k}.{n}": f"{n}_l0" for n in kinds}
        lstm.load_state_dict({names[n]: p for n, p in rec.state_dict().items() if n in names})
        layers.append(lstm)
    want = layers[1](layers[0](x)[0] * mask)[0]
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


def test_locked_dropout_between_layers_fused_equals_unrolled_and_is_off_in_eval():
    fused, unrolled = _two_layer_lstm("fused").train(), _two_layer_lstm("unrolled").train()
    x = torch.randn(9, 4, 5, requires_grad=True)
    torch.manual_seed(5)
    a, (ha, ca) = fused(x)
    torch.manual_seed(5)
    b, (hb, cb) = unrolled(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ca, cb, rtol=1e-5, atol=1e-6)
    a.sum().backward()
    assert x.grad is not None and fused.cell(1).weight_ih.grad is not None
    plain = Recurrent("lstm", 5, 6, num_layers=2)
    plain.load_state_dict(fused.state_dict())
    torch.testing.assert_close(fused.eval()(x)[0], plain.eval()(x)[0])


def test_locked_dropout_between_layers_with_lengths_runs_the_loop():
    rec = _two_layer_lstm("auto").train()
    out, _ = rec(torch.randn(6, 3, 5), lengths=torch.tensor([6, 4, 2]))
    assert out.shape == (6, 3, 6) and bool((out[4:, 2] == 0).all())
