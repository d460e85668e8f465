"""Recurrent cells in the lecture's equations: Elman, LSTM and GRU.

A cell computes one time step. It is split in two so that a layer can run it fast:

* ``project_input(x)`` -- the part that does not depend on the previous state,
  W x_t + b, computed for all time steps at once in one matrix product;
* ``step(gx_t, state)`` -- the recurrence proper, from that projection and the
  previous state to the new state.

``cell(x_t, state)`` does both for a single step, like ``torch.nn.LSTMCell``.

Every cell stores its weights in torch's layout, so that the same parameters run in
torch's fused kernels (see :mod:`elman.nn.recurrent`)::

    weight_ih  (G*H, I)   the input weights   W  (the gates' W_i, W_f, ... stacked)
    weight_hh  (G*H, H)   the recurrent weights U (U_i, U_f, ... stacked)
    bias_ih    (G*H,)     \\  the lecture's single bias b = bias_ih + bias_hh;
    bias_hh    (G*H,)     /  torch keeps two, so we do too

with G = 1 (Elman), 4 (LSTM, gate order i, f, c̃, o -- torch's i, f, g, o) or
3 (GRU, gate order r, z, h̃ -- torch's r, z, n).

A cell of ``input_size`` 0 reads nothing: its W is a (G*H, 0) matrix that holds no number, and
its step is the recurrence alone, e.g. the lecture's plain decoder h_t = f(W_hh h_{t-1}) (an
Elman cell without bias), fed inputs of shape (B, 0).

Inside a layer the state is always a tuple: ``(h,)`` for Elman and GRU, ``(h, c)``
for LSTM; ``cell(x_t, state)`` takes and returns a plain tensor ``h`` for Elman and GRU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]

NONLINEARITIES = ("tanh", "relu", "sigmoid")
ELMAN_INITS = ("uniform", "orthogonal", "identity")
GRU_VARIANTS = ("cho", "cudnn")


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(
            f"{name}={value!r} is not accepted; use one of {', '.join(map(repr, accepted))}"
        )
    return value


def _positive(name: str, value: int, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        use = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise ValueError(f"{name}={value!r} is not accepted; use {use}")
    return value


class _Cell(nn.Module):
    """Parameters in torch's layout and the single-step call shared by all cells."""

    gate_count = 1  # G: how many H-sized blocks weight_ih stacks
    # registered as None when bias=False, so they stay out of the state_dict
    bias_ih: nn.Parameter | None
    bias_hh: nn.Parameter | None

    def __init__(self, input_size: int, hidden_size: int, bias: bool) -> None:
        super().__init__()
        self.input_size = _positive("input_size", input_size, least=0)  # 0: reads nothing
        self.hidden_size = _positive("hidden_size", hidden_size)
        self.bias = bool(bias)
        gh = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))
            self.bias_hh = nn.Parameter(torch.empty(gh))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every weight and bias ~ U(-1/√H, 1/√H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flat_weights(self) -> list[Tensor]:
        """[weight_ih, weight_hh, bias_ih, bias_hh] (no biases when bias=False): the
        per-layer list torch's fused kernels take."""
        ws: list[Tensor] = [self.weight_ih, self.weight_hh]
        if self.bias_ih is not None and self.bias_hh is not None:
            ws += [self.bias_ih, self.bias_hh]
        return ws

    def state_size(self) -> int:
        """How many tensors the state holds: 1 (h) or 2 (h, c)."""
        return 1

    def project_input(self, x: Tensor) -> Tensor:
        """W x + b for any leading shape: x (..., I) -> (..., G*H).

        Both biases sit outside the recurrent product here, so they fold into one; a cell whose
        bias_hh is partly inside the recurrence (the GRU) overrides this.
        """
        if self.bias_ih is None or self.bias_hh is None:
            return x @ self.weight_ih.t()
        return torch.addmm(self.bias_ih + self.bias_hh, x.flatten(0, -2), self.weight_ih.t()).view(
            *x.shape[:-1], -1
        )

    def step(self, gx: Tensor, state: State, weight_hh: Tensor | None = None) -> State:
        """One time step from the projected input gx (B, G*H) and the state tuple.

        ``weight_hh`` replaces the cell's own recurrent matrix for this step (e.g. one with
        DropConnect applied, shared by every step of a sequence); None uses ``self.weight_hh``.
        """
        raise NotImplementedError

    def forward(self, x: Tensor, state: Tensor | State | None = None) -> Tensor | State:
        """One time step: x shape (B, I); state h (B, H), or (h, c) for LSTM; zeros if None."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected (batch, input_size={self.input_size})"
            )
        if x.dtype != self.weight_hh.dtype:
            raise ValueError(
                f"x has dtype {x.dtype}; expected the parameters' dtype {self.weight_hh.dtype}"
            )
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros,) * self.state_size()
        if isinstance(state, Tensor):
            return self.step(self.project_input(x), (state,))[0]
        return self.step(self.project_input(x), tuple(state))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class ElmanCell(_Cell):
    """Elman's simple recurrent cell.

        h_t = f(W_hh h_{t-1} + W_hx x_t + b)

    with f = tanh, relu or sigmoid; W_hx = ``weight_ih`` (H, I), W_hh = ``weight_hh``
    (H, H), b = ``bias_ih`` + ``bias_hh``. The sigmoid cell without bias is the
    lecture's RNN language-model cell h_t = σ(W_hh h_{t-1} + W_hx x_t).

    init:
      * ``"uniform"``: torch's default, all weights and biases ~ U(-1/√H, 1/√H);
      * ``"orthogonal"``: W_hh a random orthogonal matrix, b = 0, W_hx as uniform;
      * ``"identity"``: W_hh = identity_scale·I, b = 0, W_hx as uniform (Le et al. 2015,
        "IRNN"; with relu it is the lecture's remedy for vanishing gradients).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        init: str = "uniform",
        identity_scale: float = 1.0,
    ) -> None:
        self.nonlinearity = _choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.init = _choice("init", init, ELMAN_INITS)
        self.identity_scale = float(identity_scale)
        super().__init__(input_size, hidden_size, bias)
        self._f = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[nonlinearity]

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.init == "uniform":
            return
        with torch.no_grad():
            if self.init == "identity":
                self.weight_hh.copy_(self.identity_scale * torch.eye(self.hidden_size))
            else:
                nn.init.orthogonal_(self.weight_hh)
            if self.bias_ih is not None and self.bias_hh is not None:
                self.bias_ih.zero_()
                self.bias_hh.zero_()

    def step(self, gx: Tensor, state: State, weight_hh: Tensor | None = None) -> State:
        W_hh = self.weight_hh if weight_hh is None else weight_hh
        return (self._f(torch.addmm(gx, state[0], W_hh.t())),)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}, init={self.init!r}"


class LSTMCell(_Cell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate):

        i_t = σ(W_i x_t + U_i h_{t-1} + b_i)        input gate
        f_t = σ(W_f x_t + U_f h_{t-1} + b_f)        forget gate
        o_t = σ(W_o x_t + U_o h_{t-1} + b_o)        output gate
        c̃_t = tanh(W_c x_t + U_c h_{t-1} + b_c)     new memory cell
        c_t = f_t ∘ c_{t-1} + i_t ∘ c̃_t             final memory cell
        h_t = o_t ∘ tanh(c_t)

    ``weight_ih`` = [W_i; W_f; W_c; W_o] (4H, I), ``weight_hh`` = [U_i; U_f; U_c; U_o]
    (4H, H): torch's gate order i, f, g, o with g = c̃; b = ``bias_ih`` + ``bias_hh``.

    forget_bias: the initial b_f (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1,
    our default). It is only an initialisation: bias_ih's f block is set to it and
    bias_hh's to 0; everything else is torch's U(-1/√H, 1/√H). With bias=False it is
    ignored.
    """

    gate_count = 4

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, forget_bias: float = 1.0
    ) -> None:
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias_ih is not None and self.bias_hh is not None:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H : 2 * H].fill_(self.forget_bias)
                self.bias_hh[H : 2 * H].zero_()

    def state_size(self) -> int:
        return 2

    def step(self, gx: Tensor, state: State, weight_hh: Tensor | None = None) -> State:
        h, c = state
        U = self.weight_hh if weight_hh is None else weight_hh
        gates = torch.addmm(gx, h, U.t())  # (B, 4H)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"


class GRUCell(_Cell):
    """Gated recurrent unit of Cho et al. 2014.

    ``variant="cho"`` -- the paper's equations, reset gate applied before the product:

        r_t = σ(W_r x_t + U_r h_{t-1} + b_r)        reset gate
        z_t = σ(W_z x_t + U_z h_{t-1} + b_z)        update gate
        h̃_t = tanh(W x_t + U (r_t ∘ h_{t-1}) + b)   new memory
        h_t = (1 − z_t) ∘ h̃_t + z_t ∘ h_{t-1}

    ``variant="cudnn"`` -- as torch.nn.GRU and cuDNN: the reset gate applied after the
    product, h̃_t = tanh(W x_t + b_in + r_t ∘ (U h_{t-1} + b_hn)). Only this variant
    runs in torch's fused kernel; the two differ once U ≠ 0, so they are different models.

    ``weight_ih`` = [W_r; W_z; W] (3H, I), ``weight_hh`` = [U_r; U_z; U] (3H, H): torch's
    gate order r, z, n; the biases b_r, b_z, b = bias_ih + bias_hh per block (for cudnn
    b_hn = bias_hh's last block stays inside r_t ∘ (...)).

    Note: the lecture's GRU slide repeats the LSTM equations; what we implement is Cho
    et al. 2014 above (with a bias per gate, as torch).
    """

    gate_count = 3

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, variant: str = "cho"
    ) -> None:
        self.variant = _choice("variant", variant, GRU_VARIANTS)
        super().__init__(input_size, hidden_size, bias)

    def project_input(self, x: Tensor) -> Tensor:
        # bias_hh cannot be folded here: its last block sits inside the recurrence
        # (cudnn), and keeping the rest out too keeps step() the same for both variants.
        if self.bias_ih is None:
            return x @ self.weight_ih.t()
        return torch.addmm(self.bias_ih, x.flatten(0, -2), self.weight_ih.t()).view(
            *x.shape[:-1], -1
        )

    def step(self, gx: Tensor, state: State, weight_hh: Tensor | None = None) -> State:
        h = state[0]
        H = self.hidden_size
        U = self.weight_hh if weight_hh is None else weight_hh
        gx_rz, gx_n = gx[:, : 2 * H], gx[:, 2 * H :]
        if self.variant == "cudnn":
            gh = (
                h @ U.t() if self.bias_hh is None else torch.addmm(self.bias_hh, h, U.t())
            )  # (B, 3H)
            r, z = torch.sigmoid(gx_rz + gh[:, : 2 * H]).chunk(2, 1)
            n = torch.tanh(gx_n + r * gh[:, 2 * H :])
        else:
            w_rz, w_n = U[: 2 * H], U[2 * H :]
            gh_rz = h @ w_rz.t()
            if self.bias_hh is not None:
                gh_rz = gh_rz + self.bias_hh[: 2 * H]
                gx_n = gx_n + self.bias_hh[2 * H :]
            r, z = torch.sigmoid(gx_rz + gh_rz).chunk(2, 1)
            n = torch.tanh(torch.addmm(gx_n, r * h, w_n.t()))
        return (n + z * (h - n),)  # = (1 − z) ∘ h̃ + z ∘ h

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, variant={self.variant!r}"
