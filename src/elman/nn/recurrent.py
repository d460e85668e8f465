"""``Recurrent``: a cell run over time -- stacked, optionally bidirectional, two impls.

The lecture's deep bidirectional RNN, layer i reading layer i−1's outputs::

    h→_t^(i) = f(W→^(i) h_t^(i−1) + V→^(i) h→_{t−1}^(i) + b→^(i))
    h←_t^(i) = f(W←^(i) h_t^(i−1) + V←^(i) h←_{t+1}^(i) + b←^(i))
    h_t^(i)  = [h→_t^(i); h←_t^(i)]          (h_t^(0) = x_t)

Two implementations share one set of parameters:

* ``"unrolled"`` runs our cells' ``step`` in a Python loop over time (any cell);
* ``"fused"`` hands the same parameters to torch's kernel (``torch._VF.rnn_tanh``,
  ``rnn_relu``, ``lstm``, ``gru``; cuDNN on GPU) -- only for cells it implements:
  tanh/relu Elman, LSTM and GRU variant "cudnn".

``impl="auto"`` picks fused when it applies. Parameters live in ``cells[k]`` with
k = layer·D + direction, which maps one to one to torch.nn.RNN/LSTM/GRU's names::

    cells.{k}.weight_ih  <->  weight_ih_l{layer}{suffix}     suffix = "" (forward)
    cells.{k}.weight_hh  <->  weight_hh_l{layer}{suffix}           or "_reverse"
    cells.{k}.bias_ih    <->  bias_ih_l{layer}{suffix}
    cells.{k}.bias_hh    <->  bias_hh_l{layer}{suffix}

(:meth:`Recurrent.torch_names` returns this table), so a model trained with one impl
runs with the other, and a torch module's state_dict loads after renaming.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from elman.nn.cells import ElmanCell, GRUCell, LSTMCell, State, _Cell, _choice, _positive

# the one table from a cell's name to its class
CELLS: dict[str, type[_Cell]] = {"elman": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}
IMPLS = ("auto", "fused", "unrolled")

# the state callers pass and get back: h (L·D, B, H), or the pair (h, c) for LSTM
RecurrentState = Tensor | tuple[Tensor, Tensor]
# torch._VF.rnn_tanh, rnn_relu, lstm or gru: (output, *final state)
FusedKernel = Callable[..., tuple[Tensor, ...]]


def _cell_options(cell: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check the cell's own keyword options (everything but the sizes) by name."""
    params = inspect.signature(CELLS[cell].__init__).parameters
    accepted = [n for n in params if n not in ("self", "input_size", "hidden_size")]
    for name in options:
        if name not in accepted:
            raise ValueError(
                f"{name!r} is not an option of the {cell} cell; accepted: {', '.join(accepted)}"
            )
    return options


def _fused_kernel_or_reason(cell: _Cell) -> tuple[FusedKernel | None, str]:
    """torch's kernel computing exactly this cell, or None and the reason why not."""
    if isinstance(cell, LSTMCell):
        return _VF.lstm, ""
    if isinstance(cell, GRUCell):
        if cell.variant == "cudnn":
            return _VF.gru, ""
        return None, "torch's GRU kernel applies the reset gate after U h (variant='cudnn')"
    assert isinstance(cell, ElmanCell), type(cell)  # CELLS holds these three
    if cell.nonlinearity == "tanh":
        return _VF.rnn_tanh, ""
    if cell.nonlinearity == "relu":
        return _VF.rnn_relu, ""
    return None, "torch's RNN kernels have only tanh and relu, not sigmoid"


class Recurrent(nn.Module):
    """A stack of ``num_layers`` recurrent layers of one cell type.

    Args:
        cell: ``"elman"``, ``"lstm"`` or ``"gru"``.
        input_size: I, features of x_t; 0 for a stack whose first layer reads nothing (x of
            shape (T, B, 0): h_t = f(W_hh h_{t−1} + b)), which runs unrolled.
        hidden_size: H, features of each direction's h_t.
        num_layers: L; layer i > 1 reads layer i−1's outputs (both directions).
        bidirectional: add a backward direction (D = 2) to every layer.
        dropout: dropout on the outputs of every layer but the last (as torch).
        locked_dropout: draw that dropout's mask once per sequence, the same at every time
            step (Gal and Ghahramani 2016's variational dropout, as AWD-LSTM between its
            layers); the fused path then runs torch's kernel one layer at a time with the
            mask in between. Standard dropout (False) draws a new mask at every t.
        weight_dropout: DropConnect on the recurrent matrices W_hh (Wan et al. 2013; the
            "weight-dropped" RNNs of Merity et al. 2018): in training, every forward call
            zeroes each entry of each W_hh with this probability (scaling the rest by 1/(1−p))
            and uses that one matrix at every time step, in the fused and unrolled paths alike.
        batch_first: x and out are (B, T, ·) instead of (T, B, ·); states are not affected.
        impl: ``"auto"``, ``"fused"`` or ``"unrolled"`` (module docstring).
        **cell_options: the cell's own options, e.g. ``nonlinearity="relu"``,
            ``init="identity"`` (Elman), ``forget_bias=1.0`` (LSTM), ``variant="cudnn"``
            (GRU), ``bias=False`` (all). Anything else is a ValueError.

    ``forward(x, state=None, lengths=None) -> (out, state)``:
        x: (T, B, I) (``batch_first``: (B, T, I)) or a PackedSequence;
        state: h (L·D, B, H) for elman/gru, (h, c) for lstm, in torch's layout
            (index layer·D + direction); zeros if None;
        lengths: optional (B,) true lengths of a padded x;
        out: (T, B, D·H) with padded positions exactly zero (PackedSequence in, out);
        final state: at each sequence's true end; the backward direction starts there.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        impl: str = "auto",
        weight_dropout: float = 0.0,
        locked_dropout: bool = False,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        self.cell_type = _choice("cell", cell, tuple(CELLS))
        self.impl = _choice("impl", impl, IMPLS)
        self.input_size = _positive("input_size", input_size, least=0)
        self.hidden_size = _positive("hidden_size", hidden_size)
        self.num_layers = _positive("num_layers", num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} is not accepted; use a value in [0, 1)")
        self.dropout = float(dropout)
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(
                f"weight_dropout={weight_dropout!r} is not accepted; use a value in [0, 1)"
            )
        self.weight_dropout = float(weight_dropout)
        self.locked_dropout = bool(locked_dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.batch_first = bool(batch_first)
        self.output_size = self.num_directions * hidden_size
        options = _cell_options(cell, cell_options)
        cells = [
            CELLS[cell](input_size if layer == 0 else self.output_size, hidden_size, **options)
            for layer in range(num_layers)
            for _ in range(self.num_directions)
        ]
        self.cells = nn.ModuleList(cells)
        self._kernel: FusedKernel | None
        self._kernel, reason = _fused_kernel_or_reason(cells[0])
        if input_size == 0:  # cuDNN refuses an empty input; the loop needs none
            self._kernel, reason = None, "torch's kernels need an input of at least one feature"
        if impl == "fused" and self._kernel is None:
            raise ValueError(f"impl='fused' does not apply to this {cell} cell: {reason}")
        self.uses_fused = self._kernel is not None and impl != "unrolled"

    @property
    def state_size(self) -> int:
        return 2 if self.cell_type == "lstm" else 1

    def cell(self, k: int) -> _Cell:
        """The cell of layer·D + direction ``k``: ``cells[k]`` as the cell it is (a
        ModuleList's items are typed as plain Modules), e.g. ``cell(0).weight_hh``."""
        cell = self.cells[k]
        assert isinstance(cell, _Cell), type(cell)
        return cell

    def all_cells(self) -> list[_Cell]:
        """Every cell, in the order k = layer·D + direction (for D = 1: one per layer)."""
        return [self.cell(k) for k in range(len(self.cells))]

    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> RecurrentState:
        """Zeros in the state layout: (L·D, B, H), or a pair of them for LSTM."""
        p = self.cell(0).weight_hh
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        h = torch.zeros(shape, device=device or p.device, dtype=dtype or p.dtype)
        return (h, torch.zeros_like(h)) if self.state_size == 2 else h

    def reset_parameters(self) -> None:
        """Re-draw every cell's parameters with its own init."""
        for cell in self.all_cells():
            cell.reset_parameters()

    def torch_names(self) -> dict[str, str]:
        """Our parameter names -> torch.nn.RNN/LSTM/GRU's, e.g.
        ``cells.1.weight_ih`` -> ``weight_ih_l0_reverse`` when bidirectional."""
        names = {}
        for k, cell in enumerate(self.cells):
            layer, direction = divmod(k, self.num_directions)
            suffix = "_reverse" if direction else ""
            for name, _ in cell.named_parameters():
                kind, which = name.split("_")  # weight_ih -> weight, ih
                names[f"cells.{k}.{name}"] = f"{kind}_{which}_l{layer}{suffix}"
        return names

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        x: Tensor | PackedSequence,
        state: RecurrentState | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | PackedSequence, RecurrentState]:
        if isinstance(x, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths must be None when x is a PackedSequence")
            return self._forward_packed(x, state)
        self._check_input(x)
        if self.batch_first:
            x = x.transpose(0, 1)  # (T, B, I)
        T, B = x.shape[:2]
        hx = self._check_state(state, B, x)
        if lengths is not None:
            lengths = self._check_lengths(lengths, T, B)
            if bool((lengths == T).all()):
                lengths = None  # nothing padded: the plain path is the same and faster
        w_hh = self._recurrent_weights()
        if self.uses_fused and self._locked_between_layers():
            if lengths is None:
                out, hx = self._fused_by_layer(x, hx, w_hh)
            else:  # the padded batch's masks live in the loop; the kernel packs instead
                out, hx = self._unrolled(x, hx, lengths, w_hh)
        elif self.uses_fused:
            out, hx = self._fused_padded(x, hx, lengths, w_hh)
        else:
            out, hx = self._unrolled(x, hx, lengths, w_hh)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, self._state_out(hx)

    def _forward_packed(
        self,
        x: PackedSequence,
        state: RecurrentState | None,
        w_hh: list[Tensor | None] | None = None,
    ) -> tuple[PackedSequence, RecurrentState]:
        self._check_input(x.data, packed=True)
        B = int(x.batch_sizes[0])
        hx = self._check_state(state, B, x.data)
        if w_hh is None:
            w_hh = self._recurrent_weights()
        if self.uses_fused and not self._locked_between_layers():
            assert self._kernel is not None  # uses_fused says there is one
            if x.sorted_indices is not None:  # the kernel sees the batch sorted by length
                hx = tuple(h.index_select(1, x.sorted_indices) for h in hx)
            out = self._kernel(
                x.data, x.batch_sizes, self._hx_arg(hx), self._flat_weights(w_hh),
                self.cell(0).bias, self.num_layers, self.dropout, self.training,
                self.bidirectional,
            )  # fmt: skip
            data, hx = out[0], tuple(out[1:])
            if x.unsorted_indices is not None:
                hx = tuple(h.index_select(1, x.unsorted_indices) for h in hx)
        else:
            padded, lengths = pad_packed_sequence(x)  # (T, B, I), the caller's batch order
            padded, hx = self._unrolled(padded, hx, lengths.to(padded.device), w_hh)
            if x.sorted_indices is not None:  # pack back in the input's (sorted) order
                padded = padded.index_select(1, x.sorted_indices)
                lengths = lengths[x.sorted_indices.cpu()]
            data = pack_padded_sequence(padded, lengths).data
        packed = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        return packed, self._state_out(hx)

    # ------------------------------------------------------------------ fused

    def _recurrent_weights(self) -> list[Tensor | None]:
        """Each cell's W_hh for this forward call: DropConnect-ed in training, else None."""
        if not (self.training and self.weight_dropout > 0.0):
            return [None] * len(self.cells)
        return [F.dropout(cell.weight_hh, self.weight_dropout) for cell in self.all_cells()]

    def _flat_weights(self, w_hh: list[Tensor | None]) -> list[Tensor]:
        flat: list[Tensor] = []
        for cell, u in zip(self.all_cells(), w_hh, strict=True):
            ws = cell.flat_weights()
            flat += ws if u is None else [ws[0], u, *ws[2:]]  # [W_ih, W_hh, b_ih, b_hh]
        return flat

    def _locked_between_layers(self) -> bool:
        """Whether this forward call draws one dropout mask per sequence between layers."""
        return self.locked_dropout and self.training and self.dropout > 0 and self.num_layers > 1

    def _between_layers(self, x: Tensor) -> Tensor:
        """Dropout on a lower layer's outputs x (T, B, D·H) before the next layer reads them."""
        if self.dropout == 0.0 or not self.training:
            return x
        if not self.locked_dropout:
            return F.dropout(x, self.dropout, True)
        keep = 1.0 - self.dropout
        return x * (x.new_empty(1, x.size(1), x.size(2)).bernoulli_(keep) / keep)

    def _fused_by_layer(
        self, x: Tensor, hx: State, w_hh: list[Tensor | None]
    ) -> tuple[Tensor, State]:
        """The fused kernel one layer at a time, with the locked mask between layers."""
        assert self._kernel is not None  # only called when uses_fused
        D = self.num_directions
        flat = self._flat_weights(w_hh)
        per_layer = len(flat) // self.num_layers
        finals: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self._between_layers(x)
            h0 = tuple(h[layer * D : (layer + 1) * D] for h in hx)
            weights = flat[layer * per_layer : (layer + 1) * per_layer]
            out = self._kernel(
                x, self._hx_arg(h0), weights, self.cell(0).bias, 1, 0.0, self.training,
                self.bidirectional, False,
            )  # fmt: skip
            x = out[0]
            finals.append(tuple(out[1:]))
        return x, tuple(torch.cat([f[i] for f in finals]) for i in range(self.state_size))

    def _hx_arg(self, hx: State) -> Tensor | list[Tensor]:
        return list(hx) if self.state_size == 2 else hx[0]

    def _fused_padded(
        self, x: Tensor, hx: State, lengths: Tensor | None, w_hh: list[Tensor | None]
    ) -> tuple[Tensor, State]:
        if lengths is None:
            assert self._kernel is not None  # only called when uses_fused
            out = self._kernel(
                x, self._hx_arg(hx), self._flat_weights(w_hh), self.cell(0).bias,
                self.num_layers, self.dropout, self.training, self.bidirectional, False,
            )  # fmt: skip
            return out[0], tuple(out[1:])
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        packed_out, state = self._forward_packed(packed, self._state_out(hx), w_hh)
        padded, _ = pad_packed_sequence(packed_out, total_length=x.shape[0])  # (T, B, D·H)
        return padded, (state,) if isinstance(state, Tensor) else state

    # ------------------------------------------------------------------ unrolled

    def _unrolled(
        self, x: Tensor, hx: State, lengths: Tensor | None, w_hh: list[Tensor | None]
    ) -> tuple[Tensor, State]:
        """x (T, B, I), hx tuple of (L·D, B, H) -> out (T, B, D·H), final state tuple."""
        T = x.shape[0]
        mask = None
        if lengths is not None:
            steps = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
            mask = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
        finals: list[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self._between_layers(layer_input)
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                s0 = tuple(h[k] for h in hx)
                out, s = _run_cell(
                    self.cell(k), layer_input, s0, mask, reverse=direction == 1, weight_hh=w_hh[k]
                )
                outs.append(out)
                finals.append(s)
            layer_input = outs[0] if len(outs) == 1 else torch.cat(outs, 2)  # (T, B, D·H)
        state = tuple(torch.stack([f[i] for f in finals]) for i in range(self.state_size))
        return layer_input, state

    # ------------------------------------------------------------------ checks

    def _check_input(self, x: Tensor, packed: bool = False) -> None:
        want = (
            "(T*B, input_size)"
            if packed
            else ("(B, T, input_size)" if self.batch_first else "(T, B, input_size)")
        )
        if x.dim() != (2 if packed else 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected {want} with input_size={self.input_size}"
            )
        dtype = self.cell(0).weight_hh.dtype
        # under torch.autocast a layer's input may already be bfloat16: autocast casts it anyway
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"x has dtype {x.dtype}; expected the parameters' dtype {dtype}")

    def _check_state(self, state: RecurrentState | None, B: int, x: Tensor) -> State:
        if state is None:
            return tuple(
                x.new_zeros(self.num_layers * self.num_directions, B, self.hidden_size)
                for _ in range(self.state_size)
            )
        parts = (state,) if isinstance(state, Tensor) else tuple(state)
        if torch.is_autocast_enabled(x.device.type):  # a state carried out of a bfloat16 step
            parts = tuple(p.to(x.dtype) if isinstance(p, Tensor) else p for p in parts)
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        kind = "a pair (h, c)" if self.state_size == 2 else "a tensor h"
        if len(parts) != self.state_size or any(
            not isinstance(p, Tensor) or tuple(p.shape) != shape or p.dtype != x.dtype
            for p in parts
        ):
            got = [(tuple(p.shape), p.dtype) if isinstance(p, Tensor) else p for p in parts]
            raise ValueError(
                f"state must be {kind} of shape (num_layers*num_directions, batch, "
                f"hidden_size)={shape} and dtype {x.dtype}; got {got}"
            )
        return parts

    def _check_lengths(self, lengths: Tensor, T: int, B: int) -> Tensor:
        if (
            not isinstance(lengths, Tensor)
            or lengths.shape != (B,)
            or lengths.dtype.is_floating_point
            or lengths.dtype == torch.bool
        ):
            raise ValueError(f"lengths must be an integer tensor of shape (batch={B},)")
        if int(lengths.min()) < 1 or int(lengths.max()) > T:
            raise ValueError(f"lengths must lie in [1, T={T}]; got {lengths.tolist()}")
        return lengths

    def _state_out(self, hx: State) -> RecurrentState:
        if self.state_size == 2:
            h, c = hx
            return h, c
        return hx[0]

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell_type!r}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
            f"locked_dropout={self.locked_dropout}, "
            f"batch_first={self.batch_first}, uses_fused={self.uses_fused}"
        )


def _run_cell(
    cell: _Cell,
    x: Tensor,
    state: State,
    mask: Tensor | None,
    reverse: bool,
    weight_hh: Tensor | None = None,
) -> tuple[Tensor, State]:
    """One direction of one layer: x (T, B, I) -> outputs (T, B, H), final state.

    With a mask (T, B, 1) of real positions the state is held where a sequence has
    ended (forward) or not yet begun (backward, which therefore starts at the true end),
    and padded outputs are zero.
    """
    # W x_t + b for every t in one product; unbind, not gx[t]: the backward of T
    # selects would write T zero-filled (T, B, G*H) gradients, of unbind one stack.
    gxs = cell.project_input(x).unbind(0)  # T × (B, G*H)
    T = x.shape[0]
    outputs: list[Tensor] = [x] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = cell.step(gxs[t], state, weight_hh)
        if mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True))
        state = new
        outputs[t] = state[0]
    out = torch.stack(outputs)  # (T, B, H)
    if mask is not None:
        out = out.masked_fill(~mask, 0.0)
    return out, state
