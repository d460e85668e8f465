"""Vanishing gradients in depth: the gradient's norm per layer of a deep (bidirectional) stack,
going down from the top layer to the bottom one, at initialisation and after a short training.

The lecture draws it for a deep RNN: the loss reaches layer l only through layers l+1 … L, so

    ∂J/∂h^(l) = ∂J/∂h^(l+1) · ∂h^(l+1)/∂h^(l),     ∂h^(l+1)_t/∂h^(l)_t = diag(f'(z_t)) W_hx^(l+1)

(plus the paths through time inside each layer): with factors of norm < 1 the gradient
shrinks going down, as it does going back in time. Measured on the adding problem (T steps of
(value, marker), ŷ = w · [h_T^fwd; h_1^bwd] of the top layer, J = the mean squared error over
a fixed batch of sequences), per layer l = 1 (bottom) … L (top):

* ``weight_grad``: ‖∂J/∂θ_l‖₂ over every parameter of layer l (both directions), what the
  optimiser sees;
* ``output_grad``: ‖∂J/∂H_l‖₂, H_l layer l's whole output sequence, shape (T, B, D·H).

The stack is L one-layer :class:`~elman.nn.Recurrent` modules (:class:`DeepStack`), layer l
reading layer l−1's outputs: the same function as ``Recurrent(num_layers=L)`` without dropout
(tested), with each layer's output at hand for autograd.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from elman.errors import ElmanError
from elman.files import write_json
from elman.lab.cells import build_recurrent
from elman.lab.longrange import mean_std
from elman.lab.tasks import TRIVIAL_ADDING_MSE, FixedSet, FreshBatches, SquaredError, TaskBatch
from elman.provenance import provenance

AIM = (
    "the lecture: gradients vanish going down to lower layers of a deep RNN, unidirectional "
    "and bidirectional, at initialisation and after a short training (mean over seeds)"
)


class DeepStack(nn.Module):
    """``num_layers`` one-layer recurrent layers of the named cell; layer l reads layer l−1's
    output (D·H features, D = 2 when ``bidirectional``)."""

    def __init__(
        self, cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool
    ) -> None:
        super().__init__()
        D = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            build_recurrent(
                cell,
                input_size if i == 0 else D * hidden_size,
                hidden_size,
                fused=True,
                bidirectional=bidirectional,
            )  # fmt: skip
            for i in range(num_layers)
        )
        self.hidden_size, self.bidirectional = hidden_size, bidirectional

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (T, B, I) -> every layer's output, bottom first, each (T, B, D·H)."""
        outputs = []
        for layer in self.layers:
            x, _ = layer(x)
            outputs.append(x)
        return outputs


class DepthAddingModel(SquaredError):
    """The adding problem read from the top of a :class:`DeepStack`: ŷ = w · [h_T; h_1^bwd] + b
    (h_1^bwd only when bidirectional: the backward direction's state after reading all T)."""

    def __init__(
        self, cell: str, hidden_size: int, num_layers: int, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.stack = DeepStack(cell, 2, hidden_size, num_layers, bidirectional)
        self.out = nn.Linear((2 if bidirectional else 1) * hidden_size, 1)

    def readout(self, top: Tensor) -> Tensor:
        """top (T, B, D·H) -> ŷ (B,)."""
        H = self.stack.hidden_size
        last = top[-1, :, :H]  # (B, H): forward direction after step T
        if self.stack.bidirectional:
            last = torch.cat([last, top[0, :, H:]], dim=-1)  # (B, 2H): + backward after step 1
        return self.out(last).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """x (T, B, 2) -> ŷ (B,)."""
        return self.readout(self.stack(x)[-1])


def layer_gradients(model: DepthAddingModel, batch: TaskBatch) -> dict[str, list[float]]:
    """``weight_grad`` and ``output_grad`` (module docstring) per layer, bottom first, of
    J = mean squared error over ``batch``."""
    outputs = model.stack(batch.inputs)
    err = model.readout(outputs[-1]) - batch.targets
    J = (err * err).mean()
    params = [list(layer.parameters()) for layer in model.stack.layers]
    flat = [p for ps in params for p in ps]
    grads = torch.autograd.grad(J, outputs + flat)
    L = len(outputs)
    output_grad = [torch.linalg.vector_norm(g).item() for g in grads[:L]]
    weight_grad, i = [], L
    for ps in params:
        sq = sum(torch.linalg.vector_norm(g).item() ** 2 for g in grads[i : i + len(ps)])
        weight_grad.append(math.sqrt(sq))
        i += len(ps)
    return {"weight_grad": weight_grad, "output_grad": output_grad}


def _train(model: DepthAddingModel, *, T: int, batch_size: int, steps: int, lr: float,
           clip_norm: float, seed: int, valid: FixedSet, out: Path) -> float:  # fmt: skip
    """``steps`` Adam steps with the one trainer on fresh batches; the validation MSE."""
    from elman.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        epochs=1, optimizer="adam", lr=lr, schedule="constant", clip_norm=clip_norm,
        seed=seed, device="cpu", log_every=max(1, steps // 4), progress=False,
    )  # fmt: skip
    data = FreshBatches("adding", T, batch_size, steps, seed)

    def validate(m: torch.nn.Module) -> dict[str, float]:
        assert isinstance(m, DepthAddingModel), type(m)
        return m.metrics(valid)

    trainer = Trainer(model, cfg, data, validate, out, {})
    trainer.fit()
    return float(trainer.history[-1]["mse"])


def run(
    cells: list[str],
    *,
    layers: int = 6,
    T: int = 50,
    hidden: int = 64,
    batch_size: int = 32,
    steps: int = 300,
    lr: float = 1e-3,
    clip_norm: float = 1.0,
    measure_size: int = 256,
    seeds: list[int] | None = None,
    out: str | Path,
    results: str | Path | None = None,
    plot_path: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """For each cell, unidirectional and bidirectional, and each seed: the per-layer norms of
    a fresh ``layers``-deep stack, then after ``steps`` training steps; one record with the
    mean ± std over the seeds, written to ``out``/depth.json (and ``results``), and the plot."""
    seeds = seeds or [1, 2, 3]
    if min(layers, T, hidden, batch_size, steps, measure_size) < 1 or T < 2:
        raise ElmanError("--layers, --hidden, --batch-size, --steps must be ≥ 1 and --T ≥ 2")
    out = Path(out)
    if (out / "depth.json").exists():
        raise ElmanError(f"{out} already holds a run; choose another --out")
    measure = next(
        FixedSet("adding", T, measure_size, seed=7, batch_size=measure_size).iter_from(0)
    )
    valid = FixedSet("adding", T, 1000, seed=1_000_001)
    start = time.perf_counter()
    arms = []
    for cell in cells:
        for bidirectional in (False, True):
            per_seed = []
            for seed in seeds:
                torch.manual_seed(seed)
                model = DepthAddingModel(cell, hidden, layers, bidirectional)
                at_init = layer_gradients(model, measure)
                name = f"{cell}-{'bi' if bidirectional else 'uni'}-seed-{seed}"
                mse = _train(
                    model, T=T, batch_size=batch_size, steps=steps, lr=lr, clip_norm=clip_norm,
                    seed=seed, valid=valid, out=out / name,
                )  # fmt: skip
                trained = layer_gradients(model, measure)
                per_seed.append(
                    {"seed": seed, "init": at_init, "trained": trained, "valid_mse": mse}
                )
                print(f"{name}: valid MSE {mse:.4f}", flush=True)
            arms.append(_arm(cell, bidirectional, per_seed))
    record: dict[str, Any] = {
        "recipe": f"lab-depth-adding-T{T}-L{layers}",
        "aim": AIM,
        "baseline": TRIVIAL_ADDING_MSE,
        "metrics": {"valid": {}, "test": {}},  # the per-layer norms below are the result
        "setup": {
            "task": "adding",
            "T": T,
            "layers": layers,
            "hidden": hidden,
            "batch_size": batch_size,
            "steps": steps,
            "optimizer": "adam",
            "lr": lr,
            "clip_norm": clip_norm,
            "measure_size": measure_size,
            "seeds": seeds,
            "loss": "J = mean squared error over the measured batch",
        },  # fmt: skip
        "arms": arms,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance(torch.device("cpu"), command),
    }
    write_json(out / "depth.json", record)
    if results is not None:
        write_json(results, record)
    plot(record, plot_path or out / "depth.png")
    return record


def _arm(cell: str, bidirectional: bool, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over the seeds of each layer's norms, at init and trained."""
    arm: dict[str, Any] = {"cell": cell, "bidirectional": bidirectional}
    for when in ("init", "trained"):
        arm[when] = {
            kind: [
                mean_std([s[when][kind][l] for s in per_seed])
                for l in range(len(per_seed[0][when][kind]))
            ]
            for kind in ("weight_grad", "output_grad")
        }
    arm["valid_mse"] = mean_std([s["valid_mse"] for s in per_seed])
    arm["seeds"] = per_seed
    return arm


def arm_label(arm: dict[str, Any]) -> str:
    return f"{arm['cell']} {'bidirectional' if arm['bidirectional'] else 'unidirectional'}"


def summary_lines(record: dict[str, Any]) -> list[str]:
    """Per arm: ‖∂J/∂θ_l‖ from the top layer down, and the bottom layer's share of the top's."""
    lines = []
    for arm in record["arms"]:
        for when in ("init", "trained"):
            g = [s["mean"] for s in arm[when]["weight_grad"]]
            down = " ".join(f"{v:.2e}" for v in reversed(g))
            lines.append(
                f"{arm_label(arm):<28s} {when:<7s} |dJ/dtheta_l| top -> bottom: {down}; "
                f"bottom/top {g[0] / g[-1]:.2e}"
            )
        lines.append(
            f"{arm_label(arm):<28s} valid MSE after training {arm['valid_mse']['mean']:.4f}"
        )
    return lines


def markdown_table(record: dict[str, Any]) -> str:
    """Rows: arm × (init, trained); columns: ‖∂J/∂θ_l‖ per layer, top first (mean ± std)."""
    L = record["setup"]["layers"]
    head = " | ".join(f"layer {l}" for l in range(L, 0, -1))
    rows = [f"| arm | when | {head} | bottom / top |", "|---|---|" + "---|" * (L + 1)]
    for arm in record["arms"]:
        for when in ("init", "trained"):
            g = arm[when]["weight_grad"]
            cells = " | ".join(f"{s['mean']:.2e} ± {s['std']:.0e}" for s in reversed(g))
            rows.append(
                f"| {arm_label(arm)} | {when} | {cells} | {g[0]['mean'] / g[-1]['mean']:.2e} |"
            )
    return "\n".join(rows)


def plot(record: dict[str, Any], path: str | Path) -> Path:
    """‖∂J/∂θ_l‖ and ‖∂J/∂H_l‖ against the layer (top on the right), unidirectional and
    bidirectional side by side; dashed at initialisation, solid after training; error bars
    ± one standard deviation over the seeds."""
    from elman.lab.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex=True, sharey="row")
    colors: dict[str, Any] = {}
    for arm in record["arms"]:
        col = 1 if arm["bidirectional"] else 0
        for row, kind in enumerate(("weight_grad", "output_grad")):
            ax = axes[row][col]
            for when, style in (("init", "--"), ("trained", "-")):
                stats = arm[when][kind]
                x = list(range(1, len(stats) + 1))
                kw = {"color": colors[arm["cell"]]} if arm["cell"] in colors else {}
                line = ax.errorbar(
                    x, [s["mean"] for s in stats], yerr=[s["std"] or 0.0 for s in stats],
                    ls=style, marker="o", ms=3, capsize=2, label=f"{arm['cell']}, {when}", **kw,
                )  # fmt: skip
                colors.setdefault(arm["cell"], line.lines[0].get_color())
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
    s = record["setup"]
    for col, title in enumerate(("unidirectional", "bidirectional")):
        axes[0][col].set_title(f"{title}, {s['layers']} layers", fontsize=10)
        axes[1][col].set_xlabel("layer (1 = bottom, reads the input)")
    axes[0][0].set_ylabel("‖∂J/∂θ_l‖ (layer's weights)")
    axes[1][0].set_ylabel("‖∂J/∂H_l‖ (layer's outputs)")
    axes[0][1].legend(fontsize=8)
    fig.suptitle(
        f"adding problem T = {s['T']}, H = {s['hidden']}, {len(s['seeds'])} seeds; trained: "
        f"{s['steps']} Adam steps (lr {s['lr']:g}, clip {s['clip_norm']:g})",
        fontsize=10,
    )
    return save(fig, path)
