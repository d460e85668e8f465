"""The cells the lab compares, by the names the lecture and Le et al. (2015) use.

rnn-tanh     h_t = tanh(W_hh h_{t-1} + W_hx x_t + b)    torch's U(-1/√H, 1/√H) init
rnn-sigmoid  h_t = σ(W_hh h_{t-1} + W_hx x_t + b)       the lecture's RNN LM cell
rnn-relu     h_t = relu(W_hh h_{t-1} + W_hx x_t + b)    same init as rnn-tanh
irnn         relu with W_hh = I and b = 0 (Le et al. 2015)
rnn          the simple RNN of the 2 × 2 design, named by ``activation`` (tanh | relu) and
             ``init`` (standard | identity): b = 0 and W_hx ~ U(-1/√H, 1/√H) in every arm,
             W_hh ~ U(-1/√H, 1/√H) (standard) or I (identity), so two arms built with the
             same seed differ in W_hh alone (and in f)
lstm         forget-gate bias 1
gru          Cho et al. 2014 with ``fused=False`` (`elman lab gradients`); torch's cuDNN
             variant, r_t ∘ (W_hh h_{t-1} + b_hn), with ``fused=True`` (`lab adding`/`copy`)
"""

from __future__ import annotations

from typing import Any

import torch

from elman.nn import Recurrent

# name -> (cell type of elman.nn.Recurrent, its options)
CELL_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn-tanh": ("elman", {"nonlinearity": "tanh"}),
    "rnn-sigmoid": ("elman", {"nonlinearity": "sigmoid"}),
    "rnn-relu": ("elman", {"nonlinearity": "relu"}),
    "irnn": ("elman", {"nonlinearity": "relu", "init": "identity"}),
    "rnn": ("elman", {}),  # activation and init given separately (rnn_options)
    "lstm": ("lstm", {"forget_bias": 1.0}),
    "gru": ("gru", {"variant": "cho"}),
}


RNN_ACTIVATIONS = ("tanh", "relu")
RNN_INITS = ("standard", "identity")


def rnn_options(activation: str, init: str) -> dict[str, Any]:
    """The Elman cell's options for one arm of the 2 × 2 design (cell ``rnn``)."""
    if activation not in RNN_ACTIVATIONS:
        raise ValueError(f"activation {activation!r} unknown; valid: {', '.join(RNN_ACTIVATIONS)}")
    if init not in RNN_INITS:
        raise ValueError(f"init {init!r} unknown; valid: {', '.join(RNN_INITS)}")
    # ElmanCell's "identity" draws every weight as "uniform" first, then sets W_hh = I and
    # b = 0: the same random numbers in both arms
    return {"nonlinearity": activation, "init": "uniform" if init == "standard" else "identity"}


def cell_spec(name: str, fused: bool = False) -> tuple[str, dict[str, Any]]:
    """(cell type, options) of the named cell; ``fused`` picks the GRU variant torch's
    kernel computes (r_t applied after U h), which trains several times faster on long
    sequences."""
    if name not in CELL_SPECS:
        raise ValueError(f"cell {name!r} unknown; valid: {', '.join(CELL_SPECS)}")
    cell, options = CELL_SPECS[name]
    options = dict(options)
    if fused and cell == "gru":
        options["variant"] = "cudnn"
    return cell, options


def parse_cells(text: str) -> list[str]:
    """``"rnn-tanh,lstm"`` -> ["rnn-tanh", "lstm"], each name checked."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        cell_spec(n)
        if n == "rnn":
            raise ValueError(
                "cell 'rnn' is named by its activation and init; use rnn-tanh, irnn, ..."
            )
    if not names:
        raise ValueError(f"no cell named; valid: {', '.join(CELL_SPECS)}")
    return names


def build_recurrent(
    name: str,
    input_size: int,
    hidden_size: int,
    fused: bool = False,
    *,
    activation: str | None = None,
    init: str | None = None,
    num_layers: int = 1,
    bidirectional: bool = False,
) -> Recurrent:
    """A :class:`~elman.nn.Recurrent` of the named cell (one layer unless ``num_layers``);
    ``activation`` and ``init`` are needed for ``rnn`` and refused for the other cells."""
    cell, options = cell_spec(name, fused)
    if name == "rnn":
        if activation is None or init is None:
            raise ValueError("cell 'rnn' needs an activation (tanh|relu) and an init")
        options = rnn_options(activation, init)
    elif activation is not None or init is not None:
        raise ValueError(f"activation and init apply to cell 'rnn' only, not {name!r}")
    recurrent = Recurrent(
        cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
        **options,
    )  # fmt: skip
    if name == "rnn" and init == "standard":
        with torch.no_grad():  # b = 0 as in the identity arm
            for c in recurrent.all_cells():
                for b in (c.bias_ih, c.bias_hh):
                    if b is not None:
                        b.zero_()
    return recurrent
