"""RNNLM: shapes, weight tying, padding, the uniform model, and overfitting a tiny corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from elman.data.batching import IGNORE_INDEX, Batch, BPTTStream
from elman.models.rnnlm import RNNLM, RNNLMConfig

V = 11


def make(**kw) -> RNNLM:
    torch.manual_seed(0)
    cfg = {"vocab_size": V, "embedding_dim": 6, "hidden_size": 6, "num_layers": 2, **kw}
    return RNNLM(RNNLMConfig(**cfg))


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_shapes_and_state(cell):
    model = make(cell=cell, hidden_size=7)
    inputs = torch.randint(V, (5, 3))  # (T, B)
    logits, state = model(inputs)
    assert logits.shape == (5, 3, V)
    states = state if isinstance(state, tuple) else (state,)
    assert len(states) == (2 if cell == "lstm" else 1)
    assert all(s.shape == (2, 3, 7) for s in states)  # (L, B, H)
    # carrying the state = reading the sequence in one go
    first, s1 = model(inputs[:2])
    rest, _ = model(inputs[2:], s1)
    torch.testing.assert_close(torch.cat([first, rest]), logits)


def test_weight_tying_shares_one_parameter():
    model = make(tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    untied = make(tie_weights=False)
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == V * 6
    # one SGD step moves the shared matrix once, with both uses' gradients
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    logits, _ = model(torch.randint(V, (4, 2)))
    logits.sum().backward()
    opt.step()
    assert torch.equal(model.decoder.weight, model.embedding.weight)
    # a state_dict round trip keeps them tied
    fresh = make(tie_weights=True)
    fresh.load_state_dict(model.state_dict())
    assert fresh.decoder.weight is fresh.embedding.weight
    assert torch.equal(fresh.embedding.weight, model.embedding.weight)
    with pytest.raises(ValueError, match="embedding_dim == hidden_size"):
        RNNLMConfig(vocab_size=V, embedding_dim=4, hidden_size=6, tie_weights=True)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_loss_ignores_padded_targets(cell):
    model = make(cell=cell).double()
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(V, (6, 2), generator=g)
    targets = torch.randint(V, (6, 2), generator=g)
    lengths = [6, 4]  # column 1 ends after 4 steps; its last two targets are padding
    mask = torch.arange(6).unsqueeze(1) < torch.tensor(lengths)  # (T, B)
    padded = targets.masked_fill(~mask, IGNORE_INDEX)
    loss_sum, n, _ = model.loss(Batch(inputs, padded, mask, int(mask.sum())))
    assert n == sum(lengths)
    expected = 0.0
    for j, length in enumerate(lengths):  # every column alone, on its real steps only
        logits, _ = model(inputs[:length, j : j + 1])
        expected += torch.nn.functional.cross_entropy(
            logits[:, 0], targets[:length, j], reduction="sum"
        ).item()
    assert loss_sum.item() == pytest.approx(expected, rel=1e-12)


def test_zero_weights_give_perplexity_equal_to_the_vocabulary_size():
    model = make()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    stream = BPTTStream(torch.randint(V, (50,)), batch_size=3, bptt=4, start_id=0)
    total, count, state = 0.0, 0, None
    for batch in stream:
        loss_sum, n, state = model.loss(batch, state)
        total, count = total + loss_sum.item(), count + n
    assert count == 50
    assert math.exp(total / count) == pytest.approx(V, rel=1e-5)


def fit_counting_corpus(model: RNNLM) -> tuple[BPTTStream, float]:
    """150 epochs of Adam on 1..10 repeated (the next word is always determined); last loss."""
    ids = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 8)
    stream = BPTTStream(ids, batch_size=4, bptt=10, start_id=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        state = None
        for batch in stream:
            loss_sum, n, state = model.loss(batch, state)
            opt.zero_grad()
            (loss_sum / n).backward()
            opt.step()
            state = tuple(s.detach() for s in state)
    return stream, loss_sum.item() / n


def test_overfits_a_tiny_corpus():
    torch.manual_seed(0)
    model = make(cell="lstm", num_layers=1, embedding_dim=16, hidden_size=16)
    stream, _ = fit_counting_corpus(model)
    model.eval()
    with torch.no_grad():
        total, state = 0.0, None
        for batch in stream:
            loss_sum, n, state = model.loss(batch, state)
            total += loss_sum.item()
    assert total / stream.total_tokens < 0.05  # ppl ≈ 1 (the very first token is a guess)


def test_dropout_only_in_training():
    model = make(dropout_embedding=0.5, dropout_hidden=0.5, dropout_output=0.5)
    x = torch.randint(V, (4, 2))
    model.eval()
    a, _ = model(x)
    b, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    c, _ = model(x)
    assert not torch.equal(a, c)


def test_init_ranges():
    model = make(init_range=0.05, recurrent_init_range=0.02)
    assert model.embedding.weight.abs().max() <= 0.05
    assert model.decoder.weight.abs().max() <= 0.05 and not model.decoder.bias.any()
    assert all(p.abs().max() <= 0.02 for p in model.recurrent.parameters())
    with pytest.raises(ValueError, match="vocab_size must be positive"):
        RNNLM(RNNLMConfig(vocab_size=0))


def test_weight_dropout_reaches_the_recurrence_only_in_training():
    model = make(cell="elman", weight_dropout=0.5)
    assert model.recurrent.weight_dropout == 0.5
    x = torch.randint(V, (4, 2))
    model.eval()
    a, _ = model(x)
    assert torch.equal(a, model(x)[0])
    model.train()
    assert not torch.equal(a, model(x)[0])
    with pytest.raises(ValueError, match="weight_dropout"):
        make(weight_dropout=1.5)


FACTORED = {
    "adaptive": {"adaptive_cutoffs": [3, 7], "adaptive_div_value": 2.0},
    "class": {"output_classes": 3},
}


def factored(output: str, **kw) -> RNNLM:
    """An RNNLM with the adaptive or the class softmax (frequency bins of a Zipf-like count)."""
    torch.manual_seed(0)
    counts = torch.arange(V, 0, -1) ** 2 if output == "class" else None
    cfg = {"vocab_size": V, "embedding_dim": 6, "hidden_size": 6, "num_layers": 2, **kw}
    return RNNLM(RNNLMConfig(**cfg, output=output, **FACTORED[output]), counts)


@pytest.mark.parametrize("output", FACTORED)
def test_factored_output_is_a_normalised_distribution_over_every_word(output):
    model = factored(output).double().eval()
    logp, _ = model(torch.randint(V, (5, 3)))
    assert logp.shape == (5, 3, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(5, 3, dtype=torch.float64))


@pytest.mark.parametrize("output", FACTORED)
def test_factored_loss_equals_the_nll_of_its_distribution_and_ignores_padding(output):
    # The training loss scores only the target's cluster (and the adaptive head); it must equal
    # the cross entropy of the full distribution that forward() gives for evaluation.
    model = factored(output).double().eval()
    g = torch.Generator().manual_seed(2)
    inputs, targets = torch.randint(V, (6, 2), generator=g), torch.randint(V, (6, 2), generator=g)
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[4:, 1] = False
    padded = targets.masked_fill(~mask, IGNORE_INDEX)
    loss_sum, n, _ = model.loss(Batch(inputs, padded, mask, int(mask.sum())))
    logp, _ = model(inputs)
    expected = torch.nn.functional.nll_loss(
        logp.reshape(-1, V), padded.reshape(-1), reduction="sum", ignore_index=IGNORE_INDEX
    )
    assert n == 10
    torch.testing.assert_close(loss_sum, expected)


@pytest.mark.parametrize("output", FACTORED)
def test_factored_output_learns(output):
    torch.manual_seed(0)
    model = factored(output, cell="lstm", num_layers=1, embedding_dim=16, hidden_size=16)
    _, last_loss = fit_counting_corpus(model)
    assert last_loss < 0.1


def test_factored_outputs_reject_bad_settings():
    with pytest.raises(ValueError, match="tie_weights needs output = softmax or class"):
        RNNLMConfig(vocab_size=V, output="adaptive", tie_weights=True)
    with pytest.raises(ValueError, match="output_classes must be 0"):
        RNNLMConfig(vocab_size=V, output="class", output_classes=-1)
    with pytest.raises(ValueError, match="output_classes 12"):
        make(output="class", output_classes=12)
    with pytest.raises(ValueError, match="below the vocabulary size"):
        make(output="adaptive", adaptive_cutoffs=[3, 11])
    with pytest.raises(ValueError, match="output 'hierarchical' unknown"):
        RNNLMConfig(vocab_size=V, output="hierarchical")


def test_the_training_loss_without_logits_equals_the_evaluation_loss():
    # With gradients on, loss() takes the blockwise linear + cross entropy (no (T·B, V) logits);
    # under no_grad it takes F.cross_entropy of the logits. Same sum, padding ignored in both.
    model = make(tie_weights=False).double()
    g = torch.Generator().manual_seed(5)
    inputs, targets = torch.randint(V, (6, 2), generator=g), torch.randint(V, (6, 2), generator=g)
    targets[4:, 1] = IGNORE_INDEX
    mask = targets != IGNORE_INDEX
    batch = Batch(inputs, targets, mask, int(mask.sum()))
    train_loss, _, _ = model.loss(batch)
    assert (
        train_loss.grad_fn is not None and "LinearCrossEntropy" in type(train_loss.grad_fn).__name__
    )
    with torch.no_grad():
        eval_loss, _, _ = model.loss(batch)
    torch.testing.assert_close(train_loss.detach(), eval_loss, rtol=1e-12, atol=1e-12)


def test_a_class_softmax_ties_its_word_matrix_to_the_embeddings():
    model = factored("class", tie_weights=True)
    assert model.factored.words.weight is model.embedding.weight
    loss_sum, n, _ = model.loss(
        Batch(
            torch.randint(V, (4, 2)),
            torch.randint(V, (4, 2)),
            torch.ones(4, 2, dtype=torch.bool),
            8,
        )
    )
    loss_sum.backward()
    assert model.embedding.weight.grad is not None
    fresh = factored("class", tie_weights=True)
    fresh.load_state_dict(model.state_dict())  # a checkpoint restores the tie's one matrix
    assert fresh.factored.words.weight is fresh.embedding.weight
    torch.testing.assert_close(fresh.embedding.weight, model.embedding.weight)


def lecture_lm() -> RNNLM:
    """The lecture's σ-RNN LM: sigmoid Elman cell, no bias in the cell or the output."""
    return make(
        cell="elman", num_layers=1, cell_options={"nonlinearity": "sigmoid", "bias": False},
        output_bias=False,
    )  # fmt: skip


def test_the_lecture_lm_has_no_bias_anywhere():
    model = lecture_lm()
    assert model.decoder.bias is None
    names = {n for n, _ in model.named_parameters()}
    assert names == {"embedding.weight", "recurrent.cells.0.weight_ih",
                     "recurrent.cells.0.weight_hh", "decoder.weight"}  # fmt: skip
    assert "bias" in {n.split(".")[-1] for n, _ in make().named_parameters()}  # the default


def test_the_lecture_lm_computes_the_lectures_equations_in_numpy():
    """h_t = σ(W_hh h_{t−1} + W_hx x_t), ŷ_t = softmax(W_S h_t), x_t = C w_t, h_0 = 0."""
    model = lecture_lm().double()
    words = torch.tensor([[3, 1], [4, 1], [5, 9]])  # (T, B)
    logits, _ = model(words)
    cell = model.recurrent.cell(0)
    C, W_hx, W_hh, W_S = (
        p.detach().numpy()
        for p in (model.embedding.weight, cell.weight_ih, cell.weight_hh, model.decoder.weight)
    )
    h = np.zeros((2, 6))
    for t in range(3):
        x = C[words[t].numpy()]  # (B, E)
        h = 1.0 / (1.0 + np.exp(-(h @ W_hh.T + x @ W_hx.T)))
        z = h @ W_S.T
        y = np.exp(z - z.max(1, keepdims=True))
        y /= y.sum(1, keepdims=True)
        np.testing.assert_allclose(torch.softmax(logits[t], 1).detach().numpy(), y, rtol=1e-10)


def test_the_lecture_lm_trains_its_loss_like_the_plain_expression():
    model = lecture_lm()
    batch = next(
        iter(BPTTStream(torch.arange(40) % V, batch_size=2, bptt=5, start_id=0).iter_from(0))
    )
    loss, n, _ = model.loss(batch)  # a training step: the blockwise loss, no bias
    loss.backward()
    with torch.no_grad():
        want, _, _ = model.loss(batch)  # the plain cross entropy of the logits
    torch.testing.assert_close(loss, want)
    assert model.decoder.weight.grad is not None


def test_output_bias_false_needs_the_full_softmax():
    with pytest.raises(ValueError, match="output_bias = false needs output = softmax"):
        make(output="adaptive", adaptive_cutoffs=[5], output_bias=False)
    with pytest.raises(ValueError, match="output_bias = false needs output = softmax"):
        make(output="class", output_bias=False)


@pytest.mark.parametrize("output", ["softmax", *FACTORED])
def test_target_logprobs_are_the_full_distribution_at_the_targets(output):
    # dynamic evaluation and the cache read these instead of the (T, B, V) distribution
    model = (make() if output == "softmax" else factored(output)).double().eval()
    g = torch.Generator().manual_seed(3)
    inputs, targets = torch.randint(V, (6, 2), generator=g), torch.randint(V, (6, 2), generator=g)
    targets[5, 1] = IGNORE_INDEX  # scored as word 0, for the caller to mask
    h, _ = model.hidden(inputs)
    got = model.target_logprobs(h, targets)
    full = torch.log_softmax(model.output(h).float(), dim=-1)
    want = full.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert got.shape == (6, 2)
    torch.testing.assert_close(got, want)
    # and the same gradient: what dynamic evaluation steps along
    params = list(model.parameters())
    grad = torch.autograd.grad(got.sum(), params, allow_unused=True, retain_graph=True)
    ref = torch.autograd.grad(want.sum(), params, allow_unused=True)
    for a, b in zip(grad, ref, strict=True):
        if b is None:
            assert a is None or not a.any()
        else:
            torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-6)
