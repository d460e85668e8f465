"""Seq2Seq: teacher forcing equals step-by-step decoding, padding changes nothing, the plain
model cannot see its own output, the trainer's loss contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elman.data.batching import IGNORE_INDEX
from elman.data.pair_batches import make_batch
from elman.models.seq2seq import KINDS, Seq2Seq, Seq2SeqConfig

SRC = [[5, 6, 7, 8], [9], [10, 11]]
TGT = [[4, 5], [6, 7, 8, 9], []]


def model(kind: str, cell: str = "gru", layers: int = 1, seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(
        src_vocab_size=12, tgt_vocab_size=11, kind=kind, cell=cell, embedding_dim=6,
        hidden_size=5, num_layers=layers, attention_size=4, **kw,
    )  # fmt: skip
    return Seq2Seq(cfg).eval()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_teacher_forcing_equals_step_by_step(kind, cell, layers):
    m = model(kind, cell, layers, attention="multiplicative" if layers == 2 else "additive")
    b = make_batch(SRC, TGT)
    logits, weights = m(b.src, b.src_lengths, b.tgt_in)
    memory, state = m.encode(b.src, b.src_lengths)
    steps, step_weights = [], []
    for t in range(b.tgt_in.shape[1]):
        out, state, a = m.step(b.tgt_in[:, t], state, memory)
        steps.append(out)
        step_weights.append(a)
    torch.testing.assert_close(torch.stack(steps, 1), logits)
    if kind == "attention":
        torch.testing.assert_close(torch.stack(step_weights, 1), weights)
    else:
        assert weights is None and step_weights[0] is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(kind, cell):
    m = model(kind, cell, layers=2)
    batch = make_batch(SRC, TGT)
    logits, _ = m(batch.src, batch.src_lengths, batch.tgt_in)
    for i in range(len(SRC)):
        alone = make_batch([SRC[i]], [TGT[i]])
        single, _ = m(alone.src, alone.src_lengths, alone.tgt_in)
        n = len(TGT[i]) + 1
        torch.testing.assert_close(single[0, :n], logits[i, :n], rtol=1e-5, atol=1e-6)


def test_plain_decoder_never_sees_the_previous_words():
    m = model("plain", "lstm")
    b = make_batch(SRC, TGT)
    logits, _ = m(b.src, b.src_lengths, b.tgt_in)
    other, _ = m(b.src, b.src_lengths, torch.randint(4, 11, b.tgt_in.shape))
    torch.testing.assert_close(other, logits)
    assert not hasattr(m, "tgt_embedding")
    memory, state = m.encode(b.src, b.src_lengths)
    a, _, _ = m.step(torch.tensor([4, 5, 6]), state, memory)
    c, _, _ = m.step(torch.tensor([9, 9, 9]), state, memory)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("kind", ["conditioned", "attention"])
def test_the_other_kinds_do_see_them(kind):
    m = model(kind)
    b = make_batch(SRC, TGT)
    logits, _ = m(b.src, b.src_lengths, b.tgt_in)
    other, _ = m(b.src, b.src_lengths, torch.randint(4, 11, b.tgt_in.shape))
    assert not torch.allclose(other[:, 1:], logits[:, 1:])


def test_loss_contract_and_label_smoothing_in_training_only():
    m = model("attention", label_smoothing=0.2)
    b = make_batch(SRC, TGT)
    loss, n, state = m.loss(b)
    assert n == 2 + 1 + 4 + 1 + 0 + 1 and state is None
    logits, _ = m(b.src, b.src_lengths, b.tgt_in)
    logp = torch.log_softmax(logits, -1)
    real = b.tgt_out != IGNORE_INDEX
    expected = -logp[real].gather(1, b.tgt_out[real].unsqueeze(1)).sum()
    torch.testing.assert_close(loss, expected)  # eval mode: plain cross entropy
    m.train()
    m.drop_embedding.p = m.drop_output.p = 0.0
    smoothed, _, _ = m.loss(b)
    assert smoothed > loss
    smoothed.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_config_errors():
    for bad in ({"kind": "transformer"}, {"attention": "dot"}, {"dropout_embedding": 1.0},
                {"hidden_size": 0}, {"label_smoothing": -0.1}):  # fmt: skip
        with pytest.raises(ValueError):
            Seq2SeqConfig(**bad)
    with pytest.raises(ValueError, match="tgt_vocab_size must be set"):
        Seq2Seq(Seq2SeqConfig(src_vocab_size=5))


def lecture_plain(cell: str = "elman", layers: int = 1, **options) -> Seq2Seq:
    """The lecture's encoder-decoder: no decoder input matrix, no bias in cells or output."""
    opts = {"bias": False, **options}
    return model("plain", cell, layers, cell_options=opts, output_bias=False,
                 decoder_input_matrix=False)  # fmt: skip


def test_the_lecture_plain_model_has_no_decoder_input_and_no_bias():
    m = lecture_plain()
    assert m.decoder.input_size == 0 and m.decoder.cell(0).weight_ih.numel() == 0
    assert m.output.bias is None
    assert not [n for n, _ in m.named_parameters() if "bias" in n]
    # the default keeps the older form: a W_hx' (H × 1) fed zeros, and every bias
    old = model("plain", "elman")
    assert old.decoder.cell(0).weight_ih.shape == (5, 1) and old.output.bias is not None


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid"])
def test_the_lecture_plain_decoder_is_its_recurrence_alone_in_numpy(nonlinearity):
    """Encoder h_t = f(W_hh h_{t−1} + W_hx x_t); decoder s_0 = h_S, s_t = f(W_hh' s_{t−1}),
    y_t = softmax(W_S s_t)."""
    m = lecture_plain(nonlinearity=nonlinearity).double()
    f = np.tanh if nonlinearity == "tanh" else (lambda z: 1.0 / (1.0 + np.exp(-z)))
    src = torch.tensor([[5, 6, 7, 8]])
    tgt_in = torch.tensor([[1, 4, 5]])
    logits, _ = m(src, torch.tensor([4]), tgt_in)

    def numpy(p: torch.Tensor) -> np.ndarray:
        return p.detach().numpy()

    enc, dec = m.encoder.cell(0), m.decoder.cell(0)
    E, W_hx, W_hh = numpy(m.src_embedding.weight), numpy(enc.weight_ih), numpy(enc.weight_hh)
    U, W_S = numpy(dec.weight_hh), numpy(m.output.weight)
    h = np.zeros(5)
    for w in src[0].tolist():
        h = f(W_hh @ h + W_hx @ E[w])
    for t in range(3):
        h = f(U @ h)
        z = W_S @ h
        want = z - np.log(np.exp(z).sum())
        got = torch.log_softmax(logits[0, t], 0).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_the_inputless_decoder_equals_the_one_fed_zeros(cell, layers):
    """Dropping W_hx' changes nothing but the parameter: W_hx' · 0 = 0 (biases kept)."""
    fed = model("plain", cell, layers)
    none = model("plain", cell, layers, decoder_input_matrix=False)
    state = {k: v for k, v in fed.state_dict().items() if k != "decoder.cells.0.weight_ih"}
    none.load_state_dict(state, strict=False)
    b = make_batch(SRC, TGT)
    want, _ = fed(b.src, b.src_lengths, b.tgt_in)
    torch.testing.assert_close(none(b.src, b.src_lengths, b.tgt_in)[0], want)
    none.train()
    loss, _, _ = none.loss(b)
    loss.backward()


def test_decoder_input_matrix_false_needs_the_plain_kind():
    with pytest.raises(ValueError, match="decoder_input_matrix = false needs kind = plain"):
        Seq2SeqConfig(kind="attention", decoder_input_matrix=False)
