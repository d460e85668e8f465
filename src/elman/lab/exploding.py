"""Exploding gradients, shown and cured: an Elman RNN LM whose W_hh is scaled up, trained
with and without clipping.

W_hh starts as ``scale`` times a random orthogonal matrix, so every singular value is
``scale`` > 1 and the product Π ∂h_k/∂h_{k−1} = Π diag(f'(z_k)) W_hh grows like scale^(T−t)
wherever f' ≈ 1 (the ReLU's positive side; tanh near 0). One SGD step along such a gradient
throws the weights far away: without clipping the loss overflows ("non-finite loss at step k",
the trainer's one-line error) or jumps up and stays there. With the lecture's rule

    if ‖g‖ ≥ threshold:  g ← (threshold / ‖g‖) · g

each step moves the weights by at most lr · threshold and training proceeds. Both runs use the
one trainer; the curves come from their metrics.jsonl (``grad_norm`` is the pre-clip norm).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError
from elman.files import read_jsonl, write_json


def _build(vocab_size: int, hidden: int, nonlinearity: str, scale: float, seed: int):
    from elman.models.rnnlm import RNNLM, RNNLMConfig

    torch.manual_seed(seed)
    config = RNNLMConfig(
        vocab_size=vocab_size, cell="elman", embedding_dim=hidden, hidden_size=hidden,
        num_layers=1, cell_options={"nonlinearity": nonlinearity, "init": "orthogonal"},
    )  # fmt: skip
    model = RNNLM(config)
    with torch.no_grad():
        model.recurrent.cell(0).weight_hh.mul_(scale)  # every singular value = scale
    return model


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [r for r in read_jsonl(path) if r["kind"] == "train"]  # a torn last line is skipped


def _train_one(
    model: torch.nn.Module,
    stream: Any,
    clip: float | None,
    lr: float,
    steps: int,
    seed: int,
    log_every: int,
    out: Path,
) -> dict[str, Any]:
    """Train ``model`` with SGD for ``steps`` (clipping at ``clip``, or never: an infinite
    threshold, so the pre-clip norm is logged); its loss curve and first non-finite step."""
    from elman.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        epochs=1, optimizer="sgd", lr=lr, schedule="constant",
        clip_norm=math.inf if clip is None else clip, seed=seed,
        device="cpu", log_every=log_every, max_steps=steps, progress=False,
    )  # fmt: skip
    trainer = Trainer(model, cfg, stream, lambda m: {"loss": math.nan}, out, {})
    error = None
    try:
        trainer.fit()
    except ElmanError as err:  # the trainer's "non-finite loss at step k" one-liner
        error = str(err)
    curve = _curve(out)
    return {
        "clip_norm": clip,
        "steps": trainer.global_step,
        "error": error,
        "non_finite_step": trainer.global_step if error else None,
        "first_loss": curve[0]["loss"] if curve else None,
        "final_loss": curve[-1]["loss"] if curve else None,
        "min_loss": min((r["loss"] for r in curve), default=None),
        "curve": [[r["step"], r["loss"], r.get("grad_norm")] for r in curve],
    }


def run(
    *,
    data: str = "ptb",
    out: str | Path,
    steps: int = 300,
    hidden: int = 128,
    nonlinearity: str = "relu",
    scale: float = 1.2,
    lr: float = 1.0,
    clip_norm: float = 1.0,
    batch_size: int = 20,
    bptt: int = 35,
    seed: int = 1,
    log_every: int = 1,
    plot_path: str | Path | None = None,
) -> dict[str, Any]:
    """Train the same model twice (SGD, ``lr``), without and with clipping at ``clip_norm``;
    write ``out``/{no-clip,clip}/ run folders, ``out``/exploding.json and the plot.

    The unclipped run is given an infinite threshold: the trainer then logs its gradient norm
    too, and the rule never fires (‖g‖ ≥ ∞ only once g is already infinite)."""
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary
    from elman.tasks.lm import make_stream

    numbers = {"--scale": scale, "--lr": lr, "--clip": clip_norm}
    if steps < 1 or hidden < 1 or not all(math.isfinite(x) and x > 0 for x in numbers.values()):
        raise ElmanError(
            "--steps, --hidden, --scale, --lr and --clip must be positive (finite) numbers, got "
            f"{steps}, {hidden}, {scale}, {lr}, {clip_norm}"
        )
    out = Path(out)
    for name in ("no-clip", "clip"):
        if (out / name / "metrics.jsonl").exists():
            raise ElmanError(f"{out / name} already holds a run; choose another --out")
    dataset = resolve(data)
    vocab = Vocabulary.build(dataset.tokens("train"), specials=dataset.specials)
    stream = make_stream(vocab, dataset, "train", batch_size, bptt)
    runs: dict[str, Any] = {}
    for name, clip in (("no-clip", None), ("clip", clip_norm)):
        model = _build(len(vocab), hidden, nonlinearity, scale, seed)
        runs[name] = _train_one(model, stream, clip, lr, steps, seed, log_every, out / name)
    record = {
        "setup": {
            **_setup(dataset.name, hidden, nonlinearity, scale, lr, batch_size, bptt, steps),
            "seed": seed,
        },
        "runs": runs,
    }
    write_json(out / "exploding.json", record)  # atomic and strict (a NaN loss is null)
    plot(record, plot_path or out / "exploding.png")
    return record


def _setup(
    data: str, hidden: int, nonlinearity: str, scale: float, lr: float, batch_size: int,
    bptt: int, steps: int,
) -> dict[str, Any]:  # fmt: skip
    """What every exploding record's setup holds (the single run's and the seeds grid's)."""
    return {"data": data, "hidden": hidden, "nonlinearity": nonlinearity, "scale": scale,
            "optimizer": "sgd", "lr": lr, "batch_size": batch_size, "bptt": bptt,
            "steps": steps}  # fmt: skip


AIM = (
    "the lecture: clipping the gradient's norm prevents the explosion; an Elman LM with W_hh "
    "scaled up, trained without and with clipping at two thresholds (several seeds)"
)


def run_grid(
    *,
    data: str = "ptb",
    out: str | Path,
    clips: list[float],
    seeds: list[int],
    steps: int = 300,
    hidden: int = 128,
    nonlinearity: str = "relu",
    scale: float = 1.2,
    lr: float = 1.0,
    batch_size: int = 20,
    bptt: int = 35,
    log_every: int = 1,
    results: str | Path | None = None,
    plot_path: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """The controlled experiment: for every seed, the same model trained without clipping
    and with each threshold in ``clips`` (``out``/ARM/seed-N); one record per arm with the
    first non-finite step of each seed and the final loss as mean ± std, written to
    ``out``/exploding.json (and ``results``) and plotted."""
    import time

    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary
    from elman.lab.longrange import mean_std
    from elman.provenance import provenance
    from elman.tasks.lm import make_stream

    numbers = [scale, lr, *clips]
    if steps < 1 or hidden < 1 or not all(math.isfinite(x) and x > 0 for x in numbers):
        raise ElmanError("--steps, --hidden, --scale, --lr and --clip must be positive numbers")
    if not seeds or not clips:
        raise ElmanError("give at least one seed and one clipping threshold")
    out = Path(out)
    if (out / "exploding.json").exists():
        raise ElmanError(f"{out} already holds a run; choose another --out")
    dataset = resolve(data)
    vocab = Vocabulary.build(dataset.tokens("train"), specials=dataset.specials)
    stream = make_stream(vocab, dataset, "train", batch_size, bptt)
    start = time.perf_counter()
    arms: dict[str, Any] = {}
    for clip in [None, *clips]:
        name = "no-clip" if clip is None else f"clip-{clip:g}"
        runs = {}
        for seed in seeds:
            model = _build(len(vocab), hidden, nonlinearity, scale, seed)
            r = _train_one(
                model, stream, clip, lr, steps, seed, log_every, out / name / f"seed-{seed}"
            )
            runs[str(seed)] = r
            print(f"{name:<8s} seed {seed}: " + _how(r), flush=True)
        finals = [None if r["error"] else r["final_loss"] for r in runs.values()]
        arms[name] = {
            "clip_norm": clip,
            "non_finite_steps": [r["non_finite_step"] for r in runs.values()],
            "diverged": sum(r["error"] is not None for r in runs.values()),
            "final_loss": mean_std(finals),
            "max_grad_norm": [
                max(
                    (c[2] for c in r["curve"] if c[2] is not None and math.isfinite(c[2])),
                    default=None,
                )
                for r in runs.values()
            ],
            "runs": runs,
        }
    record: dict[str, Any] = {
        "recipe": f"lab-exploding-{nonlinearity}-scale{scale:g}",
        "aim": AIM,
        "metrics": {"valid": {}, "test": {}},  # the arms below are the result
        "setup": {
            **_setup(dataset.name, hidden, nonlinearity, scale, lr, batch_size, bptt, steps),
            "seeds": seeds,
            "clips": clips,
            "log_every": log_every,
        },  # fmt: skip
        "arms": arms,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance(torch.device("cpu"), command),
    }
    write_json(out / "exploding.json", record)  # atomic and strict (a NaN loss is null)
    if results is not None:
        write_json(results, record)
    plot_grid(record, plot_path or out / "exploding.png")
    return record


def _how(r: dict[str, Any]) -> str:
    if r["error"]:
        return f"non-finite loss at step {r['non_finite_step']}"
    return f"{r['steps']} steps, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}"


def grid_table(record: dict[str, Any]) -> str:
    """One row per arm: first non-finite step per seed, how many diverged, final loss."""
    seeds = record["setup"]["seeds"]
    rows = [
        "| arm | first non-finite step (seeds " + ", ".join(map(str, seeds)) + ") | diverged "
        "| final training loss (finite runs) | largest pre-clip norm |",
        "|---|---|---|---|---|",
    ]
    for name, arm in record["arms"].items():
        steps = ", ".join("none" if s is None else str(s) for s in arm["non_finite_steps"])
        f = arm["final_loss"]
        loss = (
            "–"
            if f["mean"] is None
            else f"{f['mean']:.3f}"
            + (f" ± {f['std']:.3f}" if f["std"] is not None else "")
            + f" (n = {f['n']})"
        )
        norms = ", ".join("–" if g is None else f"{g:.1e}" for g in arm["max_grad_norm"])
        rows.append(f"| {name} | {steps} | {arm['diverged']}/{len(seeds)} | {loss} | {norms} |")
    return "\n".join(rows)


def plot_grid(record: dict[str, Any], path: str | Path) -> Path:
    """Every run's training loss against the step, one colour per arm; an x where a run's
    loss became non-finite."""
    from elman.lab.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, arm in record["arms"].items():
        color = None
        for r in arm["runs"].values():
            steps = [c[0] for c in r["curve"]]
            loss = [
                c[1] if c[1] is not None and math.isfinite(c[1]) else math.nan for c in r["curve"]
            ]
            label = name if color is None else None
            (line,) = ax.semilogy(steps, loss, lw=1, color=color, label=label)
            color = line.get_color()
            if r["non_finite_step"] is not None:
                finite = [v for v in loss if math.isfinite(v)]
                ax.plot([r["non_finite_step"]], [finite[-1] if finite else 10.0], "x", ms=9,
                        color=color)  # fmt: skip
    s = record["setup"]
    ax.set_title(
        f"Elman ({s['nonlinearity']}) LM on {s['data']}, W_hh = {s['scale']:g}·orthogonal, SGD "
        f"lr {s['lr']:g}; {len(s['seeds'])} seeds per arm (x: non-finite loss)",
        fontsize=9,
    )
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def summary_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in record["runs"].items():
        if r["error"]:
            how = f"stopped: {r['error'].split(';')[0]}"
        else:
            how = f"{r['steps']} steps, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}"
        lines.append(f"{name:<8s} {how}")
    return lines


def plot(record: dict[str, Any], path: str | Path) -> Path:
    """Training loss (per-token cross entropy, log scale) and the pre-clip gradient norm of
    both runs against the step; an x where a run's loss became non-finite."""
    from elman.lab.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for name, r in record["runs"].items():
        steps = [c[0] for c in r["curve"]]
        loss = [c[1] if math.isfinite(c[1]) else math.nan for c in r["curve"]]
        norm = [c[2] if c[2] is not None and math.isfinite(c[2]) else math.nan for c in r["curve"]]
        label = f"{name} (threshold {r['clip_norm']})" if r["clip_norm"] else name
        z = 3 if r["non_finite_step"] is not None else 2  # the short run on top
        (line,) = axes[0].semilogy(steps, loss, ".-", ms=3, lw=1, label=label, zorder=z)
        axes[1].semilogy(steps, norm, ".-", ms=3, lw=1, color=line.get_color(), zorder=z)
        if r["non_finite_step"] is not None:
            finite = [v for v in loss if math.isfinite(v)]
            y = finite[-1] if finite else 10.0
            axes[0].plot([r["non_finite_step"]], [y], "x", ms=10, color=line.get_color(),
                         label=f"non-finite loss at step {r['non_finite_step']}")  # fmt: skip
    s = record["setup"]
    fig.suptitle(
        f"Elman ({s['nonlinearity']}) LM on {s['data']}, W_hh = {s['scale']:g}·orthogonal, "
        f"SGD lr {s['lr']:g}, BPTT {s['bptt']}",
        fontsize=10,
    )
    axes[0].set_ylabel("training loss (nats/token)")
    axes[1].set_ylabel("gradient norm ‖g‖ before clipping")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return save(fig, path)
