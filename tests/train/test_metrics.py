"""The metric window: what ``flush`` reports is the sum of what ``add`` counted, once."""

from __future__ import annotations

import pytest
import torch

from elman.train.metrics import MetricWindow

CPU = torch.device("cpu")


def test_flush_reports_the_sums_of_the_added_steps() -> None:
    window = MetricWindow(CPU, clipping=True)
    losses, tokens = [3.0, 1.5, 4.25], [6, torch.tensor(2), 4]  # model.loss returns either
    norms, fired = [2.0, 0.5, 3.5], [1, 0, 1]
    for loss, n, g, f in zip(losses, tokens, norms, fired, strict=True):
        window.add(torch.tensor(loss), n, torch.tensor(g), torch.tensor(f))
    totals = window.flush()
    assert totals.loss_sum == sum(losses) and totals.tokens == 12 and totals.steps == 3
    assert totals.mean_loss == pytest.approx(sum(losses) / 12)
    assert totals.grad_norm == pytest.approx(2.0) and totals.clip_fraction == pytest.approx(2 / 3)
    assert totals.seconds > 0 and totals.tokens_per_s == pytest.approx(12 / totals.seconds)


def test_a_flush_empties_the_window() -> None:
    window = MetricWindow(CPU, clipping=True)
    window.add(torch.tensor(5.0), 10, torch.tensor(1.0), torch.tensor(1))
    window.flush()
    assert window.steps == 0
    window.add(torch.tensor(2.0), 4, torch.tensor(3.0), torch.tensor(0))
    totals = window.flush()
    assert (totals.loss_sum, totals.tokens, totals.steps) == (2.0, 4, 1)
    assert (totals.grad_norm_sum, totals.clipped) == (3.0, 0)


def test_the_loss_is_summed_in_float64() -> None:
    # a float32 running sum would lose the small losses next to a large one
    window = MetricWindow(CPU)
    window.add(torch.tensor(1e8), 1)
    for _ in range(10):
        window.add(torch.tensor(1.0), 1)
    assert window.flush().loss_sum == 1e8 + 10


def test_without_clipping_the_window_reports_no_gradient_norm() -> None:
    window = MetricWindow(CPU)
    window.add(torch.tensor(1.0), 1)
    totals = window.flush()
    assert (totals.grad_norm_sum, totals.clipped, totals.clip_fraction) == (0.0, 0, 0.0)
