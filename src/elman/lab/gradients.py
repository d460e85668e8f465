"""Gradient flow back in time: how much the last step's loss and state depend on earlier states.

Backpropagation through time multiplies one Jacobian per step,

    ∂J_T/∂h_t = ∂J_T/∂h_T · Π_{k=t+1..T} ∂h_k/∂h_{k−1},
    ∂h_k/∂h_{k−1} = diag(f'(z_k)) W_hh                    (Elman: h_k = f(z_k)),

so the gradient vanishes when the factors' norms stay below 1 and explodes when they stay
above it. For each distance d = T − t we measure, averaged over a batch of real sequences:

* ``loss_grad``: ‖∂J_T/∂s_t‖₂, J_T the cross entropy of the prediction made at the last step;
* ``jacobian``:  ‖∂h_T/∂s_t‖₂, the spectral norm of the Jacobian of the last output h_T.

s_t is the whole recurrent state at time t: h_t for Elman and GRU cells, (h_t, c_t) for the
LSTM, every layer's for a stack -- the quantity that carries everything from t to T, so the
chain rule above holds exactly. For one Elman layer s_t = h_t.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from elman.errors import ElmanError
from elman.files import atomic_open
from elman.nn import Recurrent

if TYPE_CHECKING:
    from elman.models.rnnlm import RNNLM

States = tuple[Tensor, ...]


@dataclass
class GradientFlow:
    """Batch means per distance d = T − t, ``distance[i] = i`` for i = 0..T (d = T is s_0)."""

    distance: list[int]
    loss_grad: list[float] | None
    jacobian: list[float]


def state_trajectory(recurrent: Recurrent, x: Tensor, state0: States | None = None) -> list[States]:
    """s_0, s_1, ..., s_T of a unidirectional stack on x (T, B, I).

    Each s_t is the flat tuple of every layer's state parts (h, or h and c), s_0 = ``state0``
    (zeros if None) made to require gradients. The last layer's h_t is ``s_t[-P]`` with P the
    parts per layer.
    """
    if recurrent.bidirectional:
        raise ElmanError(
            "gradient flow is measured along one direction; the model is bidirectional"
        )
    T, B = x.shape[:2]
    P, L, H = recurrent.state_size, recurrent.num_layers, recurrent.hidden_size
    if state0 is None:
        state0 = tuple(x.new_zeros(B, H) for _ in range(L * P))
    s = tuple(part.detach().clone().requires_grad_(True) for part in state0)
    gx0 = recurrent.cell(0).project_input(x).unbind(0)  # T × (B, G·H)
    states = [s]
    for t in range(T):
        new: list[Tensor] = []
        inp: Tensor | None = None  # the layer below's h_t; None: layer 0 reads x_t
        for layer, cell in enumerate(recurrent.all_cells()):
            gx = gx0[t] if inp is None else cell.project_input(inp)
            part = cell.step(gx, s[layer * P : (layer + 1) * P])
            new.extend(part)
            inp = part[0]
        # The next step reads copies: then the gradient at s_t holds only the paths through
        # step t+1, not also LSTM's c_t -> h_t inside step t (a partial, not total, derivative).
        s = tuple(part.clone() for part in new)
        states.append(s)
    return states


def _row_norms(parts: tuple[Tensor, ...]) -> Tensor:
    """‖[p_1; p_2; ...]‖₂ per sequence, parts each (B, ·) -> (B,)."""
    return torch.linalg.vector_norm(torch.cat(parts, dim=-1), dim=-1)


def gradient_flow(
    recurrent: Recurrent,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    state0: States | None = None,
) -> GradientFlow:
    """Both norms of the module docstring for x (T, B, I).

    ``loss_fn(h_T)`` maps the last output (B, H) to the summed per-sequence losses J_T (a
    scalar); sequences do not interact, so the gradient's row b is sequence b's ∂J_T/∂s_t.
    Without it only the Jacobian norms are measured.
    """
    states = state_trajectory(recurrent, x, state0)
    T = len(states) - 1
    P = recurrent.state_size
    h_T = states[-1][-P]
    loss_grad = None
    if loss_fn is not None:
        flat = [part for s in states for part in s]
        grads = torch.autograd.grad(loss_fn(h_T), flat, retain_graph=True, allow_unused=True)
        grads = tuple(
            torch.zeros_like(p) if g is None else g for p, g in zip(flat, grads, strict=True)
        )
        n = len(states[0])
        loss_grad = [
            _row_norms(tuple(grads[t * n : (t + 1) * n])).mean().item() for t in range(T, -1, -1)
        ]
    # Backward recursion M_t = M_{t+1} ∂s_{t+1}/∂s_t, one row per unit of h_T (a batched
    # vector-Jacobian product): memory for one step's Jacobian, not T of them.
    H, B = recurrent.hidden_size, x.shape[1]
    eye = torch.eye(H, dtype=x.dtype, device=x.device).unsqueeze(1).expand(H, B, H)  # (H, B, H)
    M = tuple(eye if part is h_T else torch.zeros_like(eye) for part in states[-1])
    jacobian = [1.0]
    for t in range(T - 1, -1, -1):
        M = torch.autograd.grad(
            states[t + 1], states[t], grad_outputs=M, is_grads_batched=True, retain_graph=True,
            allow_unused=True,
        )  # fmt: skip
        M = tuple(torch.zeros_like(eye) if m is None else m for m in M)  # each (H, B, H)
        rows = torch.cat(M, dim=-1).transpose(0, 1)  # (B, H, D): sequence b's ∂h_T/∂s_t
        jacobian.append(torch.linalg.matrix_norm(rows, ord=2).mean().item())
    return GradientFlow(list(range(T + 1)), loss_grad, jacobian)


def vanishing_distance(values: list[float], ratio: float = 1e-3) -> int | None:
    """The first distance at which ``values[d] < ratio · values[0]``, or None."""
    for d, v in enumerate(values):
        if v < ratio * values[0] or (values[0] > 0 and v == 0.0):
            return d
    return None


def summary_line(name: str, flow: GradientFlow, ratio: float = 1e-3) -> str:
    """One line: where ‖∂J_T/∂h_t‖ falls below ``ratio`` of its value at t = T."""
    T = flow.distance[-1]
    values = flow.loss_grad if flow.loss_grad is not None else flow.jacobian
    what = "|dJ_T/dh_t|" if flow.loss_grad is not None else "|dh_T/dh_t|"
    d = vanishing_distance(values, ratio)
    end = values[-1] / values[0] if values[0] > 0 else math.nan
    where = (
        f"falls below {ratio:g} of its value at t=T at distance {d}"
        if d is not None
        else f"stays above {ratio:g} of its value at t=T for all {T} steps"
    )
    return (
        f"{name:<12s} {what} {where}; at distance {T}: x{end:.2e}, "
        f"|dh_T/dh_t| {flow.jacobian[-1]:.2e}"
    )


# --- on real sequences ---------------------------------------------------------------
def lm_windows(ids: Tensor, steps: int, batch: int, seed: int) -> tuple[Tensor, Tensor]:
    """``batch`` random windows of a token stream: inputs (T, B) and the targets (B,) that
    follow them, T = ``steps``."""
    if len(ids) < steps + 2:
        raise ElmanError(
            f"the text has {len(ids)} tokens; --steps {steps} needs at least {steps + 2}"
        )
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - steps - 1, (batch,), generator=g)
    inputs = torch.stack([ids[s : s + steps] for s in starts.tolist()], dim=1)  # (T, B)
    return inputs, ids[starts + steps]


def lm_gradient_flow(model: RNNLM, inputs: Tensor, targets: Tensor) -> GradientFlow:
    """Gradient flow of an :class:`~elman.models.rnnlm.RNNLM` (dropout off) on inputs
    (T, B) with the next words ``targets`` (B,): J_T is the cross entropy of w_{T+1}.

    The model is measured in float64 (it is converted in place), so that a vanished gradient
    reads as a tiny number rather than as float32's underflow to 0."""
    model.double().eval()
    x = model.embedding(inputs)  # (T, B, E)

    def loss_fn(h_T: Tensor) -> Tensor:
        return F.cross_entropy(model.decoder(h_T), targets, reduction="sum")

    return gradient_flow(model.recurrent, x, loss_fn)


def write_csv(flows: dict[str, GradientFlow], path: str | Path) -> Path:
    """Columns: cell, distance, loss_grad, loss_grad_ratio (to d = 0), jacobian."""
    path = Path(path)
    with atomic_open(path) as f:  # never a torn file in place of an older one
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["cell", "distance", "loss_grad", "loss_grad_ratio", "jacobian"])
        for name, flow in flows.items():
            for i, d in enumerate(flow.distance):
                g = flow.loss_grad[i] if flow.loss_grad is not None else math.nan
                g0 = flow.loss_grad[0] if flow.loss_grad is not None else math.nan
                ratio = g / g0 if g0 > 0 else math.nan
                w.writerow([name, d, f"{g:.6e}", f"{ratio:.6e}", f"{flow.jacobian[i]:.6e}"])
    return path


def plot(flows: dict[str, GradientFlow], path: str | Path, title: str) -> Path:
    """Two log-scale panels against T − t: ‖∂J_T/∂h_t‖ / ‖∂J_T/∂h_T‖ and ‖∂h_T/∂h_t‖."""
    from elman.lab.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)

    def positive(values: list[float]) -> list[float]:  # exact zeros are left out, not drawn
        return [v if v > 0 else math.nan for v in values]

    for name, flow in flows.items():
        if flow.loss_grad is not None and flow.loss_grad[0] > 0:
            r = positive([g / flow.loss_grad[0] for g in flow.loss_grad])
            axes[0].semilogy(flow.distance, r, label=name)
        axes[1].semilogy(flow.distance, positive(flow.jacobian), label=name)
    axes[0].set_title("‖∂J_T/∂h_t‖ relative to t = T")
    axes[1].set_title("‖∂h_T/∂h_t‖ (spectral norm)")
    for ax in axes:
        # below 1e-30 nothing is left to learn from; steeper curves leave the plot there
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 1e-30), high)
        ax.set_xlabel("distance T − t")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].axhline(1e-3, color="grey", lw=0.8, ls="--")
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _random_lm(name: str, vocab_size: int, hidden: int, seed: int) -> RNNLM:
    from elman.lab.cells import cell_spec
    from elman.models.rnnlm import RNNLM, RNNLMConfig

    cell, options = cell_spec(name)
    torch.manual_seed(seed)
    config = RNNLMConfig(
        vocab_size=vocab_size, cell=cell, embedding_dim=hidden, hidden_size=hidden,
        num_layers=1, cell_options=options,
    )  # fmt: skip
    return RNNLM(config)


def run(
    cells: list[str] | None = None,
    *,
    checkpoint: str | Path | None = None,
    data: str | None = None,
    split: str = "valid",
    steps: int = 100,
    batch: int = 16,
    hidden: int = 200,
    seed: int = 1,
    out: str | Path | None = None,
    plot_path: str | Path | None = None,
) -> dict[str, GradientFlow]:
    """Measure each named cell (random initialisation, an RNN LM of ``hidden`` units) and the
    LM in ``checkpoint`` on ``batch`` windows of ``steps`` tokens of ``data``/``split``; write
    ``out``/gradients.csv and the plot (``plot_path``, default ``out``/gradients.png)."""
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary

    if steps < 1 or batch < 1 or hidden < 1:
        raise ElmanError("--steps, --batch and --hidden must be positive integers")
    torch.manual_seed(seed)
    models: dict[str, RNNLM] = {}
    vocab = None
    if checkpoint is not None:
        from elman.tasks.loading import load

        loaded = load(checkpoint, "cpu")
        if loaded.task.name != "lm":
            raise ElmanError(
                f"{checkpoint}: a {loaded.task.name!r} checkpoint; gradient flow needs an "
                "RNN language model (task 'lm')"
            )
        vocab = loaded.vocab
        data = data or loaded.recipe.data.dataset
        models[f"trained {loaded.recipe.model.cell}"] = loaded.model
    dataset = resolve(data or "ptb")
    if vocab is None:
        vocab = Vocabulary.build(dataset.tokens("train"), specials=dataset.specials)
    for name in cells or []:
        models[name] = _random_lm(name, len(vocab), hidden, seed)
    if not models:
        raise ElmanError("nothing to measure: give --cells and/or --checkpoint")
    inputs, targets = lm_windows(vocab.encode(dataset.tokens(split)), steps, batch, seed)
    flows = {name: lm_gradient_flow(model, inputs, targets) for name, model in models.items()}
    if out is not None:
        write_csv(flows, Path(out) / "gradients.csv")
        title = f"{dataset.name}/{split}: {batch} windows of T = {steps} tokens"
        plot(flows, plot_path or Path(out) / "gradients.png", title)
    return flows
