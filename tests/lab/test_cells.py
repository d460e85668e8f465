"""The 2 × 2 design's simple RNN: the arms differ in the named factor only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from elman.lab.cells import build_recurrent, parse_cells
from elman.lab.longrange import TaskConfig, arm_name
from elman.lab.tasks import AddingModel

ARMS = [(a, i) for a in ("tanh", "relu") for i in ("standard", "identity")]


def test_identity_init_gives_the_identity_and_zero_bias():
    cell = build_recurrent("rnn", 2, 7, activation="relu", init="identity").cell(0)
    assert torch.equal(cell.weight_hh, torch.eye(7))
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_standard_init_is_uniform_with_zero_bias():
    cell = build_recurrent("rnn", 2, 50, activation="tanh", init="standard").cell(0)
    bound = 50**-0.5
    assert cell.weight_hh.abs().max() <= bound and not torch.equal(cell.weight_hh, torch.eye(50))
    assert cell.weight_hh.std() > 0.3 * bound  # drawn, not constant
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_the_four_arms_share_every_weight_but_w_hh():
    models = {}
    for activation, init in ARMS:
        torch.manual_seed(3)
        models[activation, init] = AddingModel("rnn", 6, activation=activation, init=init)
    ref = dict(models["tanh", "standard"].named_parameters())
    for (activation, init), model in models.items():
        cell = model.recurrent.cell(0)
        assert cell.nonlinearity == activation
        for name, p in model.named_parameters():
            if name.endswith("weight_hh"):
                assert torch.equal(p, ref[name]) == (init == "standard"), (activation, init)
            else:
                assert torch.equal(p, ref[name]), name


def test_the_arms_configs_differ_in_activation_and_init_only():
    configs = {arm: dataclasses.asdict(TaskConfig(cell="rnn", activation=arm[0], init=arm[1]))
               for arm in ARMS}  # fmt: skip
    base = configs["tanh", "standard"]
    for (activation, init), c in configs.items():
        differ = {k for k in c if c[k] != base[k]}
        assert differ <= {"activation", "init"}
        assert c["activation"] == activation and c["init"] == init
        assert arm_name(c) == f"rnn-{activation}-{init}"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"cell": "rnn"}, "needs --activation"),
        ({"cell": "rnn", "activation": "relu", "init": "zeros"}, "init 'zeros' unknown"),
        ({"cell": "rnn", "activation": "sigmoid", "init": "identity"}, "activation 'sigmoid'"),
        ({"cell": "irnn", "activation": "relu"}, "apply to --cell rnn only"),
    ],
)
def test_arm_options_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig(**changes)


def test_rnn_needs_its_arm_in_cell_lists():
    with pytest.raises(ValueError, match="named by its activation"):
        parse_cells("rnn-tanh,rnn")
    with pytest.raises(ValueError, match="cell 'rnn' only"):
        build_recurrent("lstm", 2, 3, activation="tanh")
