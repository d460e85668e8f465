"""Training on the long-range tasks with the one trainer, and when a task counts as solved.

An "epoch" of the trainer is ``eval_every`` fresh batches; after each the validation set is
scored, so ``steps_to_solve`` is the first multiple of ``eval_every`` at which

    adding:  validation MSE < 0.01     (Le et al. 2015's criterion; trivial predictor 0.167)
    copy:    validation accuracy on the 10 copied symbols >= 0.99

The run stops there (``stop_when_solved``), after ``steps``, or once ``max_minutes`` of wall
time are spent, whichever comes first; the final model is then scored on the test set.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError
from elman.files import write_json
from elman.lab.cells import CELL_SPECS, rnn_options
from elman.lab.tasks import (
    MODELS,
    TRIVIAL_ADDING_MSE,
    AddingModel,
    CopyModel,
    FixedSet,
    FreshBatches,
    copy_baseline,
)
from elman.provenance import provenance
from elman.train.optim import OPTIMIZERS

MAX_SEED = 2**32 - 1  # as the recipes' train.seed
SET_SIZES = ("valid_size", "test_size")  # an empty set would score NaN

AIMS = {
    "adding": "Le et al. 2015 (fig. 2), adding problem T=150: the IRNN and the LSTM reach test "
    "MSE < 0.01, a tanh RNN with standard initialisation stays near the trivial 0.167",
    "rnn": "Le et al. 2015 via the lecture: with the same optimiser, learning rate and input "
    "init, the identity initialisation of W_hh and ReLU help on the adding problem "
    "(2 x 2 design, mean over seeds)",
    "copy": "Arjovsky et al. 2016 / Hochreiter & Schmidhuber 1997, copy memory: gated cells "
    "beat the baseline 10 ln 8/(T+20); a plain tanh RNN stays at it",
}

# Per cell: optimiser settings that solve T=150 within the CPU budget where the cell can
# (chosen by short sanity runs, docs/gradients.md); every field can be overridden.
CELL_DEFAULTS: dict[str, dict[str, Any]] = {
    "irnn": {"optimizer": "adam", "lr": 1e-4, "clip_norm": 1.0, "input_std": 1e-3},
    "rnn-tanh": {"optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "input_std": None},
    "rnn-relu": {"optimizer": "adam", "lr": 1e-4, "clip_norm": 1.0, "input_std": None},
    "rnn-sigmoid": {"optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "input_std": None},
    "lstm": {"optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "input_std": None},
    "gru": {"optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "input_std": None},
    # the 2 × 2 design (activation × init of W_hh): one setting for all four arms
    "rnn": {"optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "input_std": None},
}


@dataclass
class TaskConfig:
    task: str = "adding"  # adding | copy
    cell: str = "irnn"  # a name of elman.lab.cells.CELL_SPECS
    activation: str | None = None  # cell "rnn" only: tanh | relu
    init: str | None = None  # cell "rnn" only: standard | identity (of W_hh)
    T: int = 150
    hidden_size: int = 100
    batch_size: int = 32
    steps: int = 30000  # at most this many training steps
    eval_every: int = 250
    valid_size: int = 1000
    test_size: int = 10000
    optimizer: str | None = None  # None: the cell's default (CELL_DEFAULTS)
    lr: float | None = None
    clip_norm: float | None = None
    input_std: float | None = None
    stop_when_solved: bool = True
    max_minutes: float | None = 10.0
    seed: int = 1
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.task not in MODELS:
            raise ValueError(f"task {self.task!r} unknown; valid: {', '.join(MODELS)}")
        if self.cell not in CELL_SPECS:
            raise ValueError(f"cell {self.cell!r} unknown; valid: {', '.join(CELL_SPECS)}")
        self._check_arm()
        for name in ("T", "hidden_size", "batch_size", "steps", "eval_every") + SET_SIZES:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for key, value in CELL_DEFAULTS[self.cell].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {self.optimizer!r} unknown; valid: {', '.join(OPTIMIZERS)}"
            )
        for name in ("lr", "clip_norm", "input_std", "max_minutes"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):  # NaN, inf too
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0 … {MAX_SEED}, got {self.seed}")

    def _check_arm(self) -> None:
        """activation and init: both for cell rnn, neither for the others."""
        if self.cell == "rnn":
            if self.activation is None or self.init is None:
                raise ValueError("cell 'rnn' needs --activation (tanh|relu) and --init "
                                 "(standard|identity)")  # fmt: skip
            rnn_options(self.activation, self.init)  # checks both names
        elif self.activation is not None or self.init is not None:
            raise ValueError(f"--activation and --init apply to --cell rnn only, not {self.cell!r}")


def arm_name(config: TaskConfig | dict[str, Any]) -> str:
    """The cell's name, or for cell ``rnn`` the arm: ``rnn-relu-identity``."""
    c = dataclasses.asdict(config) if isinstance(config, TaskConfig) else config
    if c["cell"] == "rnn":
        return f"rnn-{c['activation']}-{c['init']}"
    return str(c["cell"])


def solved(task: str, metrics: dict[str, float]) -> bool:
    if task == "adding":
        return metrics["mse"] < 0.01
    return metrics["accuracy"] >= 0.99


def run(
    config: TaskConfig,
    *,
    out: str | Path,
    results: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``config.cell`` on ``config.task``; write the run folder ``out`` (checkpoints,
    metrics.jsonl, results.json, curve.png) and ``results`` if given; return the record."""
    from elman.train.trainer import TrainConfig, Trainer

    c = config
    out = Path(out)
    if (out / "last.pt").exists():
        raise ElmanError(f"{out} already holds a run; choose another folder with --out")
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    model = MODELS[c.task](
        c.cell, c.hidden_size, input_std=c.input_std, activation=c.activation, init=c.init
    )
    valid = FixedSet(c.task, c.T, c.valid_size, seed=c.seed + 1_000_001)
    epochs = math.ceil(c.steps / c.eval_every)
    # TaskConfig.__post_init__ filled in the cell's defaults (CELL_DEFAULTS) where None
    assert c.optimizer is not None and c.lr is not None, (c.optimizer, c.lr)
    train_cfg = TrainConfig(
        epochs=epochs, optimizer=c.optimizer, lr=c.lr, schedule="constant",
        clip_norm=c.clip_norm, seed=c.seed, device="cpu", log_every=c.eval_every,
        progress=False,
    )  # fmt: skip
    data = FreshBatches(c.task, c.T, c.batch_size, c.eval_every, c.seed)
    meta = {"task": f"lab-{c.task}", "lab": dataclasses.asdict(c)}

    def validate(m: torch.nn.Module) -> dict[str, float]:
        assert isinstance(m, (AddingModel, CopyModel)), type(m)  # the model of MODELS above
        return m.metrics(valid)

    trainer = Trainer(model, train_cfg, data, validate, out, meta)
    start = time.perf_counter()
    steps_to_solve, stopped = None, "steps"
    print(f"{c.task} T={c.T} {arm_name(c)} seed {c.seed}: {c.optimizer} lr {c.lr:g} "
          f"clip {c.clip_norm}", flush=True)  # fmt: skip
    for k in range(1, epochs + 1):
        trainer.config.max_steps = k * c.eval_every  # one evaluation per fit() call
        try:
            trainer.fit()
        except ElmanError as err:  # non-finite loss: the run diverged; record it
            print(f"elman: {err}", file=sys.stderr, flush=True)
            stopped = "diverged"
            break
        last = trainer.history[-1]
        if steps_to_solve is None and solved(c.task, last):
            steps_to_solve = last["step"]
            if c.stop_when_solved:
                stopped = "solved"
                break
        if c.max_minutes is not None and time.perf_counter() - start > 60 * c.max_minutes:
            stopped = "time"
            break
    wall = time.perf_counter() - start
    record = _record(c, trainer, steps_to_solve, stopped, wall, command)
    write_json(out / "results.json", record)  # atomic and strict (a NaN loss is null)
    if results is not None:
        write_json(results, record)
    plot_curves([record], out / "curve.png")
    return record


def _record(c, trainer, steps_to_solve, stopped, wall, command) -> dict[str, Any]:
    model = trainer.model.eval()
    test = (
        model.metrics(FixedSet(c.task, c.T, c.test_size, seed=c.seed + 2_000_002))
        if stopped != "diverged"
        else {}
    )
    last = trainer.history[-1] if trainer.history else {}
    valid = {k: v for k, v in last.items() if k in ("mse", "accuracy", "loss")}
    key = "mse" if c.task == "adding" else "accuracy"
    return {
        "recipe": f"lab-{c.task}-T{c.T}-{arm_name(c)}",
        "aim": AIMS[c.task],
        "baseline": TRIVIAL_ADDING_MSE if c.task == "adding" else copy_baseline(c.T),
        "metrics": {"valid": valid, "test": test},
        "steps_to_solve": steps_to_solve,
        "steps": trainer.global_step,
        "stopped": stopped,  # solved | steps | time | diverged
        "curve": [[r["step"], r[key]] for r in trainer.history],
        "config": dataclasses.asdict(c),
        "wall_time_s": round(wall, 1),
        **provenance(torch.device("cpu"), command),
    }


def run_seeds(
    config: TaskConfig,
    seeds: list[int],
    *,
    out: str | Path,
    results: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """:func:`run` once per seed, one after the other, into ``out``/seed-N/; write one record
    with each seed's run and the mean ± standard deviation over them (``results`` if given,
    and ``out``/results.json)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ElmanError(f"--seeds must be distinct, got {seeds}")
    out = Path(out)
    for s in seeds:  # before minutes of work: no seed may overwrite an earlier run
        if (out / f"seed-{s}" / "last.pt").exists():
            raise ElmanError(f"{out / f'seed-{s}'} already holds a run; choose another --out")
    runs = [
        run(dataclasses.replace(config, seed=s), out=out / f"seed-{s}", command=command)
        for s in seeds
    ]
    record = aggregate(runs, command)
    write_json(out / "results.json", record)
    if results is not None:
        write_json(results, record)
    plot_curves([record], out / "curve.png")
    return record


PROVENANCE = ("torch", "device", "commit", "date", "command")


def mean_std(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (n − 1) of the finite values; n counts them."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else None
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return {"mean": mean, "std": std, "n": len(finite), "values": values}


def aggregate(runs: list[dict[str, Any]], command: str | None = None) -> dict[str, Any]:
    """One record from the per-seed records of one arm (same config but the seed): metrics
    hold the means, ``spread`` the mean ± std and every seed's value."""
    first = runs[0]
    key = "mse" if first["config"]["task"] == "adding" else "accuracy"
    spread: dict[str, Any] = {
        split: {key: mean_std([r["metrics"][split].get(key) for r in runs])}
        for split in ("valid", "test")
    }
    to_solve = [r["steps_to_solve"] for r in runs]
    spread["steps_to_solve"] = {
        "solved": sum(s is not None for s in to_solve),
        **mean_std([s for s in to_solve if s is not None]),
        "values": to_solve,
    }
    config = {k: v for k, v in first["config"].items() if k != "seed"}
    config["seeds"] = [r["config"]["seed"] for r in runs]
    return {
        "recipe": first["recipe"],
        "aim": AIMS["rnn"] if first["config"]["cell"] == "rnn" else first["aim"],
        "baseline": first["baseline"],
        "metrics": {split: {key: spread[split][key]["mean"]} for split in ("valid", "test")},
        "spread": spread,
        "seeds": config["seeds"],
        "steps": [r["steps"] for r in runs],
        "stopped": [r["stopped"] for r in runs],
        "runs": [{k: v for k, v in r.items() if k not in PROVENANCE} for r in runs],
        "config": config,
        "wall_time_s": round(sum(r["wall_time_s"] for r in runs), 1),
        **provenance(torch.device("cpu"), command),
    }


def mean_curve(record: dict[str, Any]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, and the mean, smallest and largest value over the seeds of the validation
    curves, at the steps where every seed with a finite curve has a value (a run stopped early
    ends the curve; a diverged seed's null values leave it out)."""
    curves = [
        {step: v for step, v in r["curve"] if v is not None and math.isfinite(v)}
        for r in record["runs"]
    ]
    curves = [c for c in curves if c]
    if not curves:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    values = [[c[step] for c in curves] for step in steps]
    return (
        steps,
        [statistics.fmean(v) for v in values],
        [min(v) for v in values],
        [max(v) for v in values],
    )


def _pm(stats: dict[str, Any], digits: int = 4) -> str:
    """``0.0123 ± 0.0021`` (n = 3), or – when no seed gave a number."""
    if stats["mean"] is None:
        return "–"
    std = "" if stats["std"] is None else f" ± {stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f}{std}"


def summary_line(record: dict[str, Any]) -> str:
    c = record["config"]
    if "runs" in record:  # several seeds: mean ± std
        key = "mse" if c["task"] == "adding" else "accuracy"
        sp = record["spread"]
        return (
            f"{c['task']} T={c['T']} {arm_name(c):<18s} test {key} {_pm(sp['test'][key])} "
            f"over seeds {','.join(map(str, record['seeds']))} (baseline "
            f"{record['baseline']:.3f}); solved {sp['steps_to_solve']['solved']}/"
            f"{len(record['seeds'])}, steps to solve {sp['steps_to_solve']['values']}; "
            f"{record['wall_time_s']:.0f} s"
        )
    test = record["metrics"]["test"]
    what = (
        f"test MSE {test['mse']:.4f}" if "mse" in test
        else f"test accuracy {test['accuracy']:.3f}, CE {test['loss']:.4f}" if test
        else "no test score (diverged)"
    )  # fmt: skip
    solved_at = (
        f"solved at step {record['steps_to_solve']}"
        if record["steps_to_solve"] is not None
        else "not solved"
    )
    return (
        f"{c['task']} T={c['T']} {arm_name(c):<8s} {what} (baseline {record['baseline']:.3f}); "
        f"{solved_at}; {record['steps']} steps, {record['wall_time_s']:.0f} s, "
        f"stopped: {record['stopped']}"
    )


def markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per run: cell, test score, steps to solve, steps, wall time, how it stopped."""
    rows = [
        "| task | T | cell | optimiser | test | steps to solve | steps | wall time | stopped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        c, test = r["config"], r["metrics"]["test"]
        score = (
            f"MSE {test['mse']:.4f}" if test.get("mse") is not None
            else f"accuracy {test['accuracy']:.3f}" if test.get("accuracy") is not None else "–"
        )  # fmt: skip
        solve = "–" if r["steps_to_solve"] is None else str(r["steps_to_solve"])
        opt = f"{c['optimizer']} {c['lr']:g}, clip {c['clip_norm']}"
        rows.append(
            f"| {c['task']} | {c['T']} | {c['cell']} | {opt} | {score} | {solve} | {r['steps']} "
            f"| {r['wall_time_s'] / 60:.1f} min | {r['stopped']} |"
        )
    return "\n".join(rows)


def seeds_table(records: list[dict[str, Any]]) -> str:
    """One row per arm of several seeds: test and validation score as mean ± std (over the
    seeds with a finite score, their count given when some had none), how many seeds solved
    the task and at which steps, and how each run stopped."""
    rows = [
        "| task | T | arm | optimiser | seeds | test | valid | solved | steps to solve "
        "| steps | stopped | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        c, sp, n = r["config"], r["spread"], len(r["seeds"])
        key = "mse" if c["task"] == "adding" else "accuracy"
        opt = f"{c['optimizer']} {c['lr']:g}, clip {c['clip_norm']}"
        to_solve = ", ".join("–" if s is None else str(s) for s in sp["steps_to_solve"]["values"])
        steps = r["steps"][0] if len(set(r["steps"])) == 1 else "/".join(map(str, r["steps"]))
        scores = []
        for split in ("test", "valid"):
            stats = sp[split][key]
            finite = "" if stats["n"] == n else f" ({stats['n']} of {n} finite)"
            scores.append(f"{_pm(stats)}{finite}")
        stopped = ", ".join(
            f"{how} ×{r['stopped'].count(how)}" for how in dict.fromkeys(r["stopped"])
        )
        rows.append(
            f"| {c['task']} | {c['T']} | {arm_name(c)} | {opt} | {n} | {key} {scores[0]} "
            f"| {scores[1]} | {sp['steps_to_solve']['solved']}/{n} | {to_solve} | {steps} "
            f"| {stopped} | {r['wall_time_s'] / 60:.1f} min |"
        )
    return "\n".join(rows)


def plot_curves(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Validation MSE (adding, log scale) or copy accuracy against the training step; for a
    record of several seeds the mean, in a band from the smallest to the largest seed's value."""
    from elman.lab.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    task = records[0]["config"]["task"]
    for r in records:
        if "runs" in r:
            steps, mean, low, high = mean_curve(r)
            n = r["spread"]["valid"]["mse" if task == "adding" else "accuracy"]["n"]
            seeds = f"{n} of {len(r['seeds'])} seeds" if n < len(r["seeds"]) else f"{n} seeds"
            (line,) = ax.plot(steps, mean, label=f"{arm_name(r['config'])} ({seeds})")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, lw=0)
        elif r["curve"]:
            ax.plot(*zip(*r["curve"], strict=True), label=arm_name(r["config"]))
    if task == "adding":
        ax.set_yscale("log")
        ax.axhline(records[0]["baseline"], color="grey", lw=0.8, ls="--", label="trivial")
        ax.axhline(0.01, color="grey", lw=0.8, ls=":", label="solved")
        ax.set_ylabel("validation MSE")
    else:
        ax.set_ylabel("validation accuracy (copied symbols)")
    ax.set_xlabel("training step")
    ax.set_title(f"{task}, T = {records[0]['config']['T']}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)
