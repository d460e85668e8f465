"""Gradient norms per layer of a deep stack: equal to autograd on torch-layout
``Recurrent(num_layers=L)`` with the same weights; the end-to-end record and plot."""

from __future__ import annotations

import math

import pytest
import torch

from elman.lab.cells import build_recurrent
from elman.lab.depth import DepthAddingModel, layer_gradients, markdown_table, run, summary_lines
from elman.lab.tasks import TaskBatch, adding_problem
from elman.nn import Recurrent


def _deep_twin(model: DepthAddingModel, cell: str, layers: int, bidirectional: bool) -> Recurrent:
    """One Recurrent(num_layers=L) holding the stack's weights (cells k = layer·D + d)."""
    H = model.stack.hidden_size
    twin = build_recurrent(cell, 2, H, True, num_layers=layers, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    with torch.no_grad():
        for layer, rec in enumerate(model.stack.layers):
            for d in range(D):
                for name, p in rec.cell(d).named_parameters():
                    getattr(twin.cell(layer * D + d), name).copy_(p)
    return twin


@pytest.mark.parametrize("cell", ["rnn-tanh", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_per_layer_norms_equal_autograd_on_the_deep_recurrent(cell, bidirectional):
    torch.manual_seed(0)
    L, H = 3, 5
    model = DepthAddingModel(cell, H, L, bidirectional).double()
    x, y = adding_problem(4, 7, torch.Generator().manual_seed(1))
    batch = TaskBatch(x.double(), y.double())
    norms = layer_gradients(model, batch)

    twin = _deep_twin(model, cell, L, bidirectional).double()
    out, _ = twin(batch.inputs)  # (T, B, D·H), the top layer
    out.retain_grad()
    J = ((model.readout(out) - batch.targets) ** 2).mean()
    J.backward()
    D = 2 if bidirectional else 1
    for layer in range(L):
        grads = [p.grad for k in range(D) for p in twin.cell(layer * D + k).parameters()]
        direct = math.sqrt(sum(g.norm().item() ** 2 for g in grads))
        assert norms["weight_grad"][layer] == pytest.approx(direct, rel=1e-9)
    assert norms["output_grad"][-1] == pytest.approx(out.grad.norm().item(), rel=1e-9)
    assert all(g > 0 for g in norms["output_grad"])


def test_depth_run_writes_record_and_plot(tmp_path):
    results = tmp_path / "depth.json"
    record = run(["rnn-tanh"], layers=2, T=5, hidden=4, batch_size=4, steps=3, measure_size=8,
                 seeds=[1, 2], out=tmp_path / "d", results=results, command="x")  # fmt: skip
    assert {"recipe", "aim", "metrics", "command", "commit", "date", "device"} <= set(record)
    assert [a["bidirectional"] for a in record["arms"]] == [False, True]
    arm = record["arms"][0]
    assert len(arm["init"]["weight_grad"]) == 2 and arm["init"]["weight_grad"][0]["n"] == 2
    assert results.exists() and (tmp_path / "d" / "depth.png").stat().st_size > 0
    assert "bottom/top" in summary_lines(record)[0] and "layer 2" in markdown_table(record)
    with pytest.raises(Exception, match="already holds a run"):
        run(["rnn-tanh"], out=tmp_path / "d")
