"""elman's trainer computes what the plain-PyTorch loop computes (word_language_model).

``benchmarks/lm_throughput.py`` times elman's trainer against that loop; its speed only counts
if the math is the same. Here both start from the same weights, read the same BPTT batches and
take the same SGD steps with global-norm clipping; loss, gradients and weights must agree to
1e-5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from elman.data.batching import BPTTStream
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.train.trainer import TrainConfig, Trainer

V, H, LAYERS, B, T, LR, CLIP = 50, 16, 2, 4, 5, 1.0, 0.25


class Reference(nn.Module):
    """nn.Embedding → nn.LSTM → nn.Linear, as pytorch/examples/word_language_model has it."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.rnn = nn.LSTM(H, H, LAYERS)
        self.out = nn.Linear(H, V)

    def forward(self, x, h):
        y, h = self.rnn(self.emb(x), h)
        return self.out(y), h


def pair() -> tuple[RNNLM, Reference]:
    torch.manual_seed(0)
    model = RNNLM(
        RNNLMConfig(vocab_size=V, cell="lstm", embedding_dim=H, hidden_size=H, num_layers=LAYERS)
    )
    ref = Reference()
    with torch.no_grad():
        ref.emb.weight.copy_(model.embedding.weight)
        ref.out.weight.copy_(model.decoder.weight)
        ref.out.bias.copy_(model.decoder.bias)
        for k, cell in enumerate(model.recurrent.cells):  # cells.k.weight_ih ↔ weight_ih_lk
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref.rnn, f"{name}_l{k}").copy_(getattr(cell, name))
    return model, ref


def stream() -> BPTTStream:
    ids = torch.randint(V, (B * T * 3 + 7,), generator=torch.Generator().manual_seed(1))
    return BPTTStream(ids, B, T, start_id=0)


def test_one_batch_gives_the_same_loss_and_gradients() -> None:
    model, ref = pair()
    batch = next(iter(stream()))
    loss_sum, n, _ = model.loss(batch)
    (loss_sum / n).backward()
    logits, _ = ref(batch.inputs, None)
    ref_loss = F.cross_entropy(logits.reshape(-1, V), batch.targets.reshape(-1))
    ref_loss.backward()
    torch.testing.assert_close(loss_sum / n, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.embedding.weight.grad, ref.emb.weight.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decoder.weight.grad, ref.out.weight.grad, atol=1e-5, rtol=0)
    for k, cell in enumerate(model.recurrent.cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            theirs = getattr(ref.rnn, f"{name}_l{k}").grad
            torch.testing.assert_close(getattr(cell, name).grad, theirs, atol=1e-5, rtol=0)


def test_the_trainer_takes_the_reference_loops_steps(tmp_path) -> None:
    model, ref = pair()
    data = stream()
    cfg = TrainConfig(
        epochs=1, lr=LR, schedule="constant", clip_norm=CLIP, device="cpu", progress=False
    )
    Trainer(model, cfg, data, lambda m: {"loss": 0.0}, tmp_path, meta={}).fit()

    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    h = None
    for batch in data:  # the reference loop: detach, forward, mean CE, clip, step
        h = None if h is None else tuple(t.detach() for t in h)
        logits, h = ref(batch.inputs, h)
        loss = F.cross_entropy(logits.reshape(-1, V), batch.targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), CLIP)
        opt.step()
    assert len(data) == 4  # the padded last chunk included
    torch.testing.assert_close(model.decoder.weight, ref.out.weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.embedding.weight, ref.emb.weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        model.recurrent.cells[1].weight_hh, ref.rnn.weight_hh_l1, atol=1e-5, rtol=0
    )
    assert not torch.equal(ref.out.weight, pair()[1].out.weight)  # it did train
