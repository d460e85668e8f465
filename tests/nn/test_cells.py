"""The cells against an independent NumPy step, gradcheck, and their initialisations."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from elman.nn import ElmanCell, GRUCell, LSTMCell

I, H, B = 3, 4, 2

# (name, constructor options): every cell and variant
CELL_VARIANTS = [
    ("elman-tanh", ElmanCell, {"nonlinearity": "tanh"}),
    ("elman-relu", ElmanCell, {"nonlinearity": "relu"}),
    ("elman-sigmoid", ElmanCell, {"nonlinearity": "sigmoid"}),
    ("lstm", LSTMCell, {}),
    ("gru-cho", GRUCell, {"variant": "cho"}),
    ("gru-cudnn", GRUCell, {"variant": "cudnn"}),
]
IDS = [name for name, _, _ in CELL_VARIANTS]


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(name, p, x, h, c=None):
    """The lecture's equations written out once more in NumPy, block by block."""
    b = p["bias_ih"] + p["bias_hh"]
    if name.startswith("elman"):
        f = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "sigmoid": sigmoid}[
            name.split("-")[1]
        ]
        return f(p["weight_hh"] @ h + p["weight_ih"] @ x + b)
    if name == "lstm":
        W = np.split(p["weight_ih"], 4)  # W_i, W_f, W_c, W_o
        U = np.split(p["weight_hh"], 4)
        bs = np.split(b, 4)
        i = sigmoid(W[0] @ x + U[0] @ h + bs[0])
        f = sigmoid(W[1] @ x + U[1] @ h + bs[1])
        c_new = np.tanh(W[2] @ x + U[2] @ h + bs[2])
        o = sigmoid(W[3] @ x + U[3] @ h + bs[3])
        c = f * c + i * c_new
        return o * np.tanh(c), c
    W_r, W_z, W = np.split(p["weight_ih"], 3)
    U_r, U_z, U = np.split(p["weight_hh"], 3)
    bi_r, bi_z, bi_n = np.split(p["bias_ih"], 3)
    bh_r, bh_z, bh_n = np.split(p["bias_hh"], 3)
    z = sigmoid(W_z @ x + U_z @ h + bi_z + bh_z)
    r = sigmoid(W_r @ x + U_r @ h + bi_r + bh_r)
    if name == "gru-cho":
        h_new = np.tanh(W @ x + U @ (r * h) + bi_n + bh_n)
    else:
        h_new = np.tanh(W @ x + bi_n + r * (U @ h + bh_n))
    return (1 - z) * h_new + z * h


@pytest.mark.parametrize("name, cls, options", CELL_VARIANTS, ids=IDS)
def test_cell_matches_numpy_step(name, cls, options):
    torch.manual_seed(0)
    cell = cls(I, H, **options).double()
    p = {k: v.detach().numpy() for k, v in cell.named_parameters()}
    x = torch.randn(B, I, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    c = torch.randn(B, H, dtype=torch.float64)
    if name == "lstm":
        got_h, got_c = cell(x, (h, c))
        for b in range(B):
            want_h, want_c = numpy_step(name, p, x[b].numpy(), h[b].numpy(), c[b].numpy())
            np.testing.assert_allclose(got_h[b].detach().numpy(), want_h, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got_c[b].detach().numpy(), want_c, rtol=0, atol=1e-12)
    else:
        got = cell(x, h)
        for b in range(B):
            want = numpy_step(name, p, x[b].numpy(), h[b].numpy())
            np.testing.assert_allclose(got[b].detach().numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, cls, options", CELL_VARIANTS, ids=IDS)
def test_cell_gradcheck(name, cls, options):
    torch.manual_seed(1)
    cell = cls(I, H, **options).double()
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in cell.named_parameters()]
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    state = [torch.randn(B, H, dtype=torch.float64, requires_grad=True)]
    if name == "lstm":
        state.append(torch.randn(B, H, dtype=torch.float64, requires_grad=True))

    def step(x, *rest):
        s, ps = rest[: len(state)], rest[len(state) :]
        s = tuple(s) if name == "lstm" else s[0]
        return functional_call(cell, dict(zip(names, ps, strict=True)), (x, s))

    assert torch.autograd.gradcheck(step, (x, *state, *params))


def test_cell_without_bias_and_zero_state():
    torch.manual_seed(2)
    cell = LSTMCell(I, H, bias=False).double()
    assert cell.bias_ih is None and len(cell.flat_weights()) == 2
    x = torch.randn(B, I, dtype=torch.float64)
    zeros = torch.zeros(B, H, dtype=torch.float64)
    h, c = cell(x)
    h0, c0 = cell(x, (zeros, zeros))
    torch.testing.assert_close(h, h0)
    p = {k: v.detach().numpy() for k, v in cell.named_parameters()}
    p["bias_ih"] = p["bias_hh"] = np.zeros(4 * H)
    want_h, _ = numpy_step("lstm", p, x[0].numpy(), zeros[0].numpy(), zeros[0].numpy())
    np.testing.assert_allclose(h[0].detach().numpy(), want_h, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_identity_init_gives_scaled_identity(scale):
    cell = ElmanCell(I, H, nonlinearity="relu", init="identity", identity_scale=scale)
    torch.testing.assert_close(cell.weight_hh.detach(), scale * torch.eye(H))
    assert not cell.bias_ih.detach().any() and not cell.bias_hh.detach().any()


def test_orthogonal_init():
    cell = ElmanCell(I, H, init="orthogonal")
    w = cell.weight_hh.detach()
    torch.testing.assert_close(w.t() @ w, torch.eye(H), atol=1e-5, rtol=0)


def test_uniform_init_bound():
    cell = GRUCell(I, H)
    bound = 1.0 / H**0.5
    assert all(p.detach().abs().max() <= bound for p in cell.parameters())


@pytest.mark.parametrize("forget_bias", [0.0, 1.0, 2.5])
def test_lstm_forget_bias_initialises_b_f(forget_bias):
    cell = LSTMCell(I, H, forget_bias=forget_bias)
    b = (cell.bias_ih + cell.bias_hh).detach()
    torch.testing.assert_close(b[H : 2 * H], torch.full((H,), forget_bias))


def test_gru_variants_differ():
    torch.manual_seed(3)
    cho, cudnn = GRUCell(I, H, variant="cho"), GRUCell(I, H, variant="cudnn")
    cudnn.load_state_dict(cho.state_dict())
    x, h = torch.randn(B, I), torch.randn(B, H)
    assert not torch.allclose(cho(x, h), cudnn(x, h))


@pytest.mark.parametrize(
    "make, argument, accepted",
    [
        (lambda: ElmanCell(I, H, nonlinearity="gelu"), "nonlinearity", "'sigmoid'"),
        (lambda: ElmanCell(I, H, init="xavier"), "init", "'identity'"),
        (lambda: GRUCell(I, H, variant="keras"), "variant", "'cudnn'"),
        (lambda: LSTMCell(-1, H), "input_size", "integer >= 0"),
        (lambda: LSTMCell(I, -1), "hidden_size", "positive integer"),
    ],
)
def test_bad_cell_arguments_are_named(make, argument, accepted):
    with pytest.raises(ValueError, match=argument) as info:
        make()
    assert accepted in str(info.value)


def test_cell_rejects_wrong_input_shape():
    cell = ElmanCell(I, H)
    with pytest.raises(ValueError, match="input_size=3"):
        cell(torch.randn(B, I + 1))
    with pytest.raises(ValueError, match="batch"):
        cell(torch.randn(5, B, I))
    with pytest.raises(ValueError, match="x has dtype torch.int64; expected .* torch.float32"):
        cell(torch.ones(B, I, dtype=torch.long))
