"""Seq2Seq: teacher forcing equals step-by-step decoding, padding changes nothing, the plain
model cannot see its own output, the trainer's loss contract."""

from __future__ import annotations

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
