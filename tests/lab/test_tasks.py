"""Task generators: the documented structure and target statistics; the models' losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from elman.lab.tasks import (
    COPY_LENGTH,
    DELIMITER,
    TRIVIAL_ADDING_MSE,
    AddingModel,
    CopyModel,
    FixedSet,
    FreshBatches,
    adding_problem,
    copy_baseline,
    copy_memory,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adding_structure():
    T, n = 11, 500
    x, y = adding_problem(n, T, gen(0))
    assert x.shape == (T, n, 2) and y.shape == (n,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(markers.sum(0), torch.full((n,), 2.0))  # exactly two marked steps
    assert torch.equal(markers[: T // 2].sum(0), torch.ones(n))  # one in each half
    torch.testing.assert_close(y, (values * markers).sum(0))  # the sum of the marked values
    x2, y2 = adding_problem(n, T, gen(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)  # seeded


def test_adding_target_statistics():
    """E[y] = 1, Var[y] = 2/12 = 1/6: the trivial predictor ŷ = 1 has MSE ≈ 0.167."""
    n = 40000
    _, y = adding_problem(n, 150, gen(1))
    se_mean = math.sqrt(1 / 6 / n)
    assert abs(y.mean().item() - 1.0) < 5 * se_mean
    # Var of y² terms: the sample MSE of ŷ = 1 has s.e. below sqrt(E[(y-1)^4]/n) < 0.002
    trivial = ((y - 1.0) ** 2).mean().item()
    assert trivial == pytest.approx(TRIVIAL_ADDING_MSE, abs=0.006)
    assert TRIVIAL_ADDING_MSE == pytest.approx(0.1667, abs=1e-4)


def test_copy_structure_and_baseline():
    T, n = 7, 300
    inputs, targets = copy_memory(n, T, gen(2))
    L = T + 2 * COPY_LENGTH
    assert inputs.shape == targets.shape == (L, n)
    data = inputs[:COPY_LENGTH]
    assert ((data >= 1) & (data <= 8)).all()
    assert (inputs[COPY_LENGTH : COPY_LENGTH + T - 1] == 0).all()
    assert (inputs[COPY_LENGTH + T - 1] == DELIMITER).all()
    assert (inputs[-COPY_LENGTH:] == 0).all()
    assert (targets[:-COPY_LENGTH] == 0).all() and torch.equal(targets[-COPY_LENGTH:], data)
    # the baseline: blanks for sure, then a uniform guess over the 8 data symbols
    logits = torch.full((L, n, 9), -1e9)
    logits[:-COPY_LENGTH, :, 0] = 0.0
    logits[-COPY_LENGTH:, :, 1:] = 0.0
    ce = F.cross_entropy(logits.reshape(-1, 9), targets.reshape(-1)).item()
    assert ce == pytest.approx(copy_baseline(T), rel=1e-6)
    freq = torch.bincount(copy_memory(20000, 3, gen(3))[0][:COPY_LENGTH].reshape(-1), minlength=9)
    assert freq[0] == 0 and ((freq[1:] / freq[1:].sum() - 1 / 8).abs() < 0.01).all()


def test_fresh_batches_are_reproducible_and_resumable():
    data = FreshBatches("adding", 6, 4, steps=5, seed=3)
    assert len(data) == 5
    all_batches = list(data.iter_from(0))
    later = list(data.iter_from(3))
    assert len(later) == 2 and torch.equal(later[0].inputs, all_batches[3].inputs)
    assert not torch.equal(all_batches[0].inputs, all_batches[1].inputs)
    data.set_epoch(2)
    assert not torch.equal(next(data.iter_from(0)).inputs, all_batches[0].inputs)
    fixed = FixedSet("copy", 4, size=10, seed=1, batch_size=4)
    assert [b.inputs.shape[1] for b in fixed.iter_from(0)] == [4, 4, 2]


@pytest.mark.parametrize("cell", ["irnn", "lstm", "gru", "rnn-tanh"])
def test_models_losses(cell):
    torch.manual_seed(0)
    batch = next(FreshBatches("adding", 6, 5, steps=1, seed=0).iter_from(0))
    model = AddingModel(cell, 8, input_std=1e-3 if cell == "irnn" else None)
    loss_sum, n, state = model.loss(batch)
    assert n == 5 and state is None
    torch.testing.assert_close(loss_sum / n, F.mse_loss(model(batch.inputs), batch.targets))
    assert model.metrics(FixedSet("adding", 6, 7, seed=0))["mse"] >= 0
    copy = CopyModel(cell, 8)
    batch = next(FreshBatches("copy", 3, 2, steps=1, seed=0).iter_from(0))
    loss_sum, n, _ = copy.loss(batch)
    assert n == 2 * (3 + 2 * COPY_LENGTH)
    m = copy.metrics(FixedSet("copy", 3, 6, seed=0))
    assert 0.0 <= m["accuracy"] <= 1.0 and m["loss"] > 0
