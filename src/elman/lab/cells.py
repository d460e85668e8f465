"""The cells the lab compares, by the names the lecture and Le et al. (2015) use.

rnn-tanh     h_t = tanh(W_hh h_{t-1} + W_hx x_t + b)    torch's U(-1/√H, 1/√H) init
rnn-sigmoid  h_t = σ(W_hh h_{t-1} + W_hx x_t + b)       the lecture's RNN LM cell
rnn-relu     h_t = relu(W_hh h_{t-1} + W_hx x_t + b)    same init as rnn-tanh
irnn         relu with W_hh = I and b = 0 (Le et al. 2015)
lstm         forget-gate bias 1
gru          Cho et al. 2014 with ``fused=False`` (`elman lab gradients`); torch's cuDNN
             variant, r_t ∘ (W_hh h_{t-1} + b_hn), with ``fused=True`` (`lab adding`/`copy`)
"""

from __future__ import annotations

from typing import Any

from elman.nn import Recurrent

# name -> (cell type of elman.nn.Recurrent, its options)
CELL_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn-tanh": ("elman", {"nonlinearity": "tanh"}),
    "rnn-sigmoid": ("elman", {"nonlinearity": "sigmoid"}),
    "rnn-relu": ("elman", {"nonlinearity": "relu"}),
    "irnn": ("elman", {"nonlinearity": "relu", "init": "identity"}),
    "lstm": ("lstm", {"forget_bias": 1.0}),
    "gru": ("gru", {"variant": "cho"}),
}


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
    if not names:
        raise ValueError(f"no cell named; valid: {', '.join(CELL_SPECS)}")
    return names


def build_recurrent(name: str, input_size: int, hidden_size: int, fused: bool = False) -> Recurrent:
    """A one-layer :class:`~elman.nn.Recurrent` of the named cell."""
    cell, options = cell_spec(name, fused)
    return Recurrent(cell, input_size, hidden_size, **options)
