"""Gradient-flow diagnostics against finite differences and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elman.errors import ElmanError
from elman.lab.gradients import (
    GradientFlow,
    gradient_flow,
    lm_windows,
    summary_line,
    vanishing_distance,
    write_csv,
)
from elman.nn import Recurrent

T, B, I, H = 5, 2, 2, 3


def tiny(cell: str, layers: int = 1, **options) -> Recurrent:
    torch.manual_seed(0)
    rec = Recurrent(cell, I, H, num_layers=layers, **options)
    with torch.no_grad():  # larger weights than the default: far from the linear regime
        for p in rec.parameters():
            p.mul_(2.0)
    return rec.double()


def run_from(rec: Recurrent, x: torch.Tensor, flat: list[torch.Tensor]) -> torch.Tensor:
    """h_T from state s_t = flat (layer-major parts) on inputs x (T−t, B, I), by the layer's
    own forward (fused kernel where torch has one), not our trajectory code."""
    P = rec.state_size
    parts = [torch.stack(flat[i::P]) for i in range(P)]  # each (L, B, H)
    state = parts[0] if P == 1 else tuple(parts)
    if x.shape[0] == 0:
        return flat[-P]
    out, _ = rec(x, state)
    return out[-1]


@pytest.mark.parametrize(
    "cell,layers,options",
    [("elman", 1, {}), ("elman", 1, {"nonlinearity": "sigmoid"}), ("lstm", 1, {}),
     ("gru", 1, {"variant": "cho"}), ("lstm", 2, {})],
)  # fmt: skip
def test_gradient_flow_matches_finite_differences(cell, layers, options):
    rec = tiny(cell, layers, **options)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=g, dtype=torch.float64)
    head = torch.randn(H, generator=g, dtype=torch.float64)

    def loss_fn(h):  # per-sequence J_T = (w·h_T)², summed over the batch
        return ((h @ head) ** 2).sum()

    flow = gradient_flow(rec, x, loss_fn)
    # s_t by the layer's forward on x[:t]; zeros at t = 0
    P, D = rec.state_size, layers * rec.state_size
    eps = 1e-6
    for t in range(T + 1):
        if t == 0:
            s = [torch.zeros(B, H, dtype=torch.float64) for _ in range(D)]
        else:
            _, st = rec(x[:t])
            st = (st,) if P == 1 else st
            s = [st[p][layer] for layer in range(layers) for p in range(P)]
        jac = np.zeros((B, H, D * H))
        grad = np.zeros((B, D * H))
        for k in range(D):
            for j in range(H):
                plus = [v.clone() for v in s]
                minus = [v.clone() for v in s]
                plus[k][:, j] += eps
                minus[k][:, j] -= eps
                hp, hm = run_from(rec, x[t:], plus), run_from(rec, x[t:], minus)
                jac[:, :, k * H + j] = ((hp - hm) / (2 * eps)).detach().numpy()
                grad[:, k * H + j] = (
                    (((hp @ head) ** 2 - (hm @ head) ** 2) / (2 * eps)).detach().numpy()
                )
        d = T - t
        expected_jac = np.mean([np.linalg.norm(jac[b], 2) for b in range(B)])
        expected_grad = np.mean(np.linalg.norm(grad, axis=1))
        assert flow.jacobian[d] == pytest.approx(expected_jac, rel=1e-5, abs=1e-9), d
        assert flow.loss_grad[d] == pytest.approx(expected_grad, rel=1e-5, abs=1e-9)


def test_irnn_keeps_the_jacobian_norm_one_with_zero_input():
    """ReLU, W_hh = I, b = 0, x = 0, h_0 > 0: h_t = h_0 and ∂h_T/∂h_t = I for every t."""
    rec = Recurrent("elman", 4, 16, nonlinearity="relu", init="identity").double()
    x = torch.zeros(60, 3, 4, dtype=torch.float64)
    h0 = (torch.rand(3, 16, dtype=torch.float64) + 0.1,)
    flow = gradient_flow(rec, x, lambda h: h.sum(), state0=h0)
    np.testing.assert_allclose(flow.jacobian, 1.0, rtol=1e-12)
    np.testing.assert_allclose(flow.loss_grad, 4.0, rtol=1e-12)  # ‖(1, …, 1)‖ = √16


def test_scaled_identity_vanishes_geometrically():
    """W_hh = 0.9·I keeps a positive state positive: ‖∂h_T/∂h_t‖ = 0.9^(T−t) exactly."""
    rec = Recurrent("elman", 4, 8, nonlinearity="relu", init="identity", identity_scale=0.9)
    rec = rec.double()
    x = torch.zeros(30, 2, 4, dtype=torch.float64)
    flow = gradient_flow(rec, x, state0=(torch.ones(2, 8, dtype=torch.float64),))
    np.testing.assert_allclose(flow.jacobian, 0.9 ** np.arange(31), rtol=1e-6)  # float32 0.9
    assert flow.loss_grad is None
    assert vanishing_distance(flow.jacobian, 1e-1) == int(np.ceil(np.log(0.1) / np.log(0.9)))


def test_summary_csv_and_windows(tmp_path):
    flow = GradientFlow([0, 1, 2], [2.0, 1e-2, 1e-4], [1.0, 0.5, 0.25])
    assert "distance 2" in summary_line("rnn-tanh", flow)
    assert "stays above" in summary_line("lstm", GradientFlow([0, 1], [1.0, 0.5], [1.0, 1.0]))
    path = write_csv({"rnn-tanh": flow}, tmp_path / "g.csv")
    rows = path.read_text().splitlines()
    assert rows[0] == "cell,distance,loss_grad,loss_grad_ratio,jacobian" and len(rows) == 4
    ids = torch.arange(50)
    inputs, targets = lm_windows(ids, 7, 4, seed=3)
    assert inputs.shape == (7, 4)
    assert torch.equal(targets, inputs[-1] + 1)  # the word right after each window
    with pytest.raises(ElmanError, match="--steps"):
        lm_windows(ids, 60, 4, seed=3)
