"""NPLM: the equation against NumPy, gradients against finite differences, a corpus learnt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elman.data.windows import ContextWindows
from elman.models.nplm import NPLM, NPLMConfig, build_nplm

V, N_CTX, M, H = 11, 3, 4, 5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def contexts(batch: int = 6) -> torch.Tensor:
    return torch.randint(0, V, (batch, N_CTX), generator=torch.Generator().manual_seed(1))


def numpy_nplm(model: NPLM, ctx: torch.Tensor) -> np.ndarray:
    """ŷ = softmax(W2 tanh(W1 x + b1) + W3 x + b3), written out in float64 NumPy."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    C = p["embedding.weight"]
    out = []
    for row in ctx.tolist():
        x = np.concatenate([C[w] for w in row])  # [C(w_{t-n+1}); …; C(w_{t-1})]
        z = p["output.weight"] @ np.tanh(p["hidden.weight"] @ x + p["hidden.bias"])
        z = z + p["output.bias"]
        if "direct.weight" in p:
            z = z + p["direct.weight"] @ x
        e = np.exp(z - z.max())
        out.append(e / e.sum())
    return np.stack(out)


@pytest.mark.parametrize("direct", [True, False])
def test_shape_normalisation_and_equation(direct: bool) -> None:
    model = NPLM(V, N_CTX, M, H, direct=direct).eval()
    ctx = contexts()
    logits = model(ctx)
    assert logits.shape == (6, V) and logits.dtype == torch.float32
    probs = torch.softmax(logits.detach().double(), dim=-1)
    torch.testing.assert_close(probs.sum(-1), torch.ones(6, dtype=torch.float64))
    np.testing.assert_allclose(probs.numpy(), numpy_nplm(model, ctx), rtol=1e-5, atol=1e-7)


def test_parameters_are_the_papers_symbols() -> None:
    names = {n: tuple(p.shape) for n, p in NPLM(V, N_CTX, M, H).named_parameters()}
    assert names == {
        "embedding.weight": (V, M),  # C
        "hidden.weight": (H, N_CTX * M),  # W1 (H)
        "hidden.bias": (H,),  # b1 (d)
        "output.weight": (V, H),  # W2 (U)
        "output.bias": (V,),  # b3 (b)
        "direct.weight": (V, N_CTX * M),  # W3 (W)
    }
    assert "direct.weight" not in dict(NPLM(V, N_CTX, M, H, direct=False).named_parameters())


def test_without_hidden_layer_it_is_log_linear_in_the_inputs() -> None:
    """W1 = 0, W2 = 0 (any b1): ŷ = softmax(W3 x + b3), computed independently."""
    model = NPLM(V, N_CTX, M, H, direct=True).eval()
    with torch.no_grad():
        model.hidden.weight.zero_()
        model.hidden.bias.normal_()  # irrelevant once W2 = 0
        model.output.weight.zero_()
        model.output.bias.normal_()
    ctx = contexts()
    C = model.embedding.weight.detach().double().numpy()
    W3 = model.direct.weight.detach().double().numpy()
    b3 = model.output.bias.detach().double().numpy()
    x = C[ctx.numpy()].reshape(len(ctx), -1)  # (B, (n−1)·m)
    z = x @ W3.T + b3
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = torch.softmax(model(ctx).detach().double(), -1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("direct", [True, False])
def test_gradcheck_float64(direct: bool) -> None:
    model = NPLM(V, N_CTX, M, H, direct=direct).double().eval()
    ctx, targets = contexts(4), torch.randint(0, V, (4,))
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def loss(*ps: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (ctx,))
        return F.cross_entropy(logits.double(), targets, reduction="sum")

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


def fit_tiny_corpus(model: NPLM) -> float:
    """80 epochs of Adam where each window of 2 words determines the next; mean loss after."""
    ids = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 0] * 6)
    data = ContextWindows(ids, 2, 16, start_id=0, shuffle=True, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for epoch in range(1, 81):
        data.set_epoch(epoch)
        for batch in data:
            loss_sum, n, state = model.loss(batch, None)
            assert state is None
            opt.zero_grad()
            (loss_sum / n).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        total = sum(model.loss(b)[0].item() for b in ContextWindows(ids, 2, 64, start_id=0))
    return total / ids.numel()


def test_overfits_a_tiny_corpus() -> None:
    # The loss can go to zero.
    assert fit_tiny_corpus(NPLM(9, 2, 8, 16, dropout_hidden=0.0)) < 0.02


def test_dropout_only_in_training() -> None:
    model = NPLM(V, N_CTX, M, H, dropout_hidden=0.5, dropout_embedding=0.5)
    ctx = contexts()
    model.train()
    assert not torch.equal(model(ctx), model(ctx))
    model.eval()
    torch.testing.assert_close(model(ctx), model(ctx), rtol=0, atol=0)


def test_bfloat16_autocast_training_and_float32_evaluation() -> None:
    model = NPLM(V, N_CTX, M, H)
    ref = NPLM(V, N_CTX, M, H)
    ref.load_state_dict(model.state_dict())
    ctx = contexts()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the trainer's train.autocast
        train_logits = model.train()(ctx)
    assert train_logits.dtype == torch.float32
    torch.testing.assert_close(train_logits, ref.train()(ctx), rtol=0.05, atol=0.05)
    torch.testing.assert_close(model.eval()(ctx), ref.eval()(ctx), rtol=0, atol=0)


def test_config_checks_and_builder() -> None:
    with pytest.raises(ValueError, match="dropout_hidden = 1.0"):
        NPLMConfig(dropout_hidden=1.0)
    with pytest.raises(ValueError, match="dropout_embedding = -0.1"):
        NPLMConfig(dropout_embedding=-0.1)
    with pytest.raises(ValueError, match="context_size"):
        NPLMConfig(context_size=0)
    with pytest.raises(ValueError, match="vocab_size"):
        build_nplm(NPLMConfig())
    model = build_nplm(NPLMConfig(vocab_size=V, context_size=2, direct=False))
    assert model.direct is None and model.context_size == 2


FACTORED = {
    "adaptive": {"adaptive_cutoffs": [3, 7], "adaptive_div_value": 2.0},
    "class": {"output_classes": 3, "counts": torch.arange(V, 0, -1) ** 2},
}


@pytest.mark.parametrize("output", FACTORED)
@pytest.mark.parametrize("direct", [True, False])
def test_factored_output_is_normalised_and_its_loss_is_the_nll(output: str, direct: bool) -> None:
    model = NPLM(V, N_CTX, M, H, direct=direct, output=output, **FACTORED[output]).double().eval()
    ctx = contexts()
    logp = model(ctx)
    assert logp.shape == (6, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(6, dtype=torch.float64))
    targets = torch.randint(0, V, (6,), generator=torch.Generator().manual_seed(3))
    batch = type("B", (), {"contexts": ctx, "targets": targets, "num_tokens": 6})()
    loss_sum, n, _ = model.loss(batch)
    torch.testing.assert_close(loss_sum, F.nll_loss(logp, targets, reduction="sum"))
    # the output layer reads [a; x] with direct connections, a alone without
    first = model.factored.head if output == "adaptive" else model.factored.classes
    assert first.in_features == H + (N_CTX * M if direct else 0)


@pytest.mark.parametrize(
    "output, settings",
    [("adaptive", {"adaptive_cutoffs": [4], "adaptive_div_value": 2.0}), ("class", {})],
)
def test_factored_output_learns(output: str, settings: dict) -> None:
    model = NPLM(9, 2, 8, 16, output=output, **settings)
    assert fit_tiny_corpus(model) < 0.05


def test_factored_outputs_check_their_settings() -> None:
    with pytest.raises(ValueError, match="below the vocabulary size"):
        NPLM(V, N_CTX, M, H, output="adaptive", adaptive_cutoffs=[3, 11])
    with pytest.raises(ValueError, match="output 'hierarchical' unknown"):
        NPLMConfig(output="hierarchical")
    with pytest.raises(ValueError, match="output_classes must be 0"):
        NPLMConfig(output="class", output_classes=-2)


@pytest.mark.parametrize("output", FACTORED)
def test_factored_output_trains_under_bfloat16_with_a_float32_loss(output: str) -> None:
    # Regression: under a bfloat16 autocast the adaptive softmax met [a; x] in mixed dtypes
    # and torch's index_copy_ raised; the factored layer now runs in float32 after the hidden layer.
    settings = dict(FACTORED[output])
    bf16 = NPLM(V, N_CTX, M, H, output=output, **settings).train()
    fp32 = NPLM(V, N_CTX, M, H, output=output, **settings).train()
    fp32.load_state_dict(bf16.state_dict())
    ctx = contexts()
    targets = torch.randint(0, V, (6,), generator=torch.Generator().manual_seed(4))
    batch = type("B", (), {"contexts": ctx, "targets": targets, "num_tokens": 6})()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = bf16.loss(batch)
    assert loss.dtype == torch.float32
    loss.backward()
    torch.testing.assert_close(loss, fp32.loss(batch)[0], rtol=2e-2, atol=0)
