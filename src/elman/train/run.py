"""``elman train``: a recipe (or a run folder to resume) in, a trained run folder out.

A run folder holds ``recipe.toml``-equivalent JSON (``recipe.json``), ``metrics.jsonl``,
``last.pt``, ``best.pt`` and, once training ends, ``results.json``: the best checkpoint's
validation and test metrics with the command, commit, device, date and wall time.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from elman.config import read_toml
from elman.errors import ElmanError
from elman.train import distributed
from elman.train.checkpoint import load_checkpoint, resolve_checkpoint
from elman.train.recipe import parse_recipe, task_table
from elman.train.trainer import Trainer, pick_device


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    return f"{device.type} ({cpu}, {torch.get_num_threads()} threads)"


# Keys of other sections than [train] that a resume may change: they leave the weights, the
# carried state and the data position meaningful (a moved corpus folder, another impl).
RESUME_MAY_CHANGE = {("data", "dataset"), ("data", "eval_batch_size"), ("model", "impl")}


def check_resume_overrides(stored: dict[str, Any], resolved: dict[str, Any]) -> None:
    """A resume continues the same run: its model and training data must stay as they were."""
    changed = [
        f"{section}.{key}"
        for section, table in resolved.items()
        if section not in ("recipe", "train")
        for key, value in table.items()
        if value != stored.get(section, {}).get(key) and (section, key) not in RESUME_MAY_CHANGE
    ]
    if changed:
        raise ElmanError(
            f"--resume continues the same run, but --set changes {', '.join(changed)}; "
            "only [train] keys may change (start a new run with --out to change the others)"
        )


def train(
    recipe_path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    results: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train from a recipe, or continue the run in ``resume`` exactly where it stopped."""
    commit = git_commit()  # the code that trains is the code checked out now, not at the end
    payload = None
    if resume is not None:
        run_dir = Path(resume)
        last = run_dir / "last.pt" if run_dir.is_dir() else run_dir
        payload = load_checkpoint(resolve_checkpoint(last))
        run_dir = Path(payload["path"]).parent
        stored = copy.deepcopy(payload["recipe"])
        # max_steps stopped the earlier session; a resume runs on to the end unless --set
        # gives a new target (else every resume would stop at once, at the same step).
        stored.get("train", {}).pop("max_steps", None)
        recipe = parse_recipe(stored, overrides)
        check_resume_overrides(parse_recipe(stored).raw, recipe.raw)
    else:
        if recipe_path is None:
            raise ElmanError("give a recipe (elman train recipes/NAME.toml) or --resume RUN_DIR")
        recipe = parse_recipe(read_toml(recipe_path), overrides)
        run_dir = Path(out) if out is not None else Path("runs") / recipe.info.name
        if (run_dir / "last.pt").exists():
            raise ElmanError(
                f"run folder {run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another folder with --out"
            )
    # torchrun: join the other processes (a no-op for a plain run)
    started = distributed.init_from_env(recipe.train.device)
    try:
        return _train(recipe, run_dir, payload, results, command, commit)
    finally:
        if started:
            distributed.cleanup()


def _train(
    recipe, run_dir: Path, payload: dict | None, results, command: str | None, commit: str
) -> dict[str, Any]:
    """Build the task's parts and the trainer, fit, and (rank 0) write the results."""
    task = task_table()[recipe.info.task]
    vocab = None
    if payload is not None:
        from elman.data.vocabulary import Vocabulary

        vocab = getattr(task, "vocab_from_dict", Vocabulary.from_dict)(payload["vocab"])
    torch.manual_seed(recipe.train.seed)  # the model's initial weights depend on it
    parts = task.prepare(recipe, vocab=vocab)
    main = distributed.is_main()  # only rank 0 writes and prints
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.json").write_text(json.dumps(recipe.raw, indent=2) + "\n")
    trainer = Trainer(
        parts["model"],
        recipe.train,
        parts["train_data"],
        parts["evaluate"],
        run_dir,
        parts["meta"],
    )
    if payload is not None:
        trainer.load_state_dict(payload)
    command = command or "elman " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer.sessions.append(
        {
            "command": command,
            "commit": commit,
            "from_step": trainer.global_step,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    summary = trainer.fit()
    summary["sessions"] = trainer.sessions
    summary["run_dir"] = str(run_dir)
    if not main:
        return summary
    if summary["interrupted"]:
        print(
            f"stopped after step {summary['global_step']}; continue with "
            f"`elman train --resume {run_dir}`",
            flush=True,
        )
        return summary
    record = final_results(recipe, run_dir, task, parts, summary, command, commit)
    summary["results"] = record
    if results is not None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(json.dumps(record, indent=2) + "\n")
    return summary


def final_results(
    recipe, run_dir: Path, task, parts, summary: dict, command: str | None, commit: str
) -> dict:
    """Evaluate ``best.pt`` on valid and test and write ``results.json`` into the run folder."""
    device = pick_device(recipe.train.device)
    best = load_checkpoint(run_dir / "best.pt", map_location=device)
    loaded = task.load(best, device)
    data_cfg = recipe.data
    metrics = {}
    for split in ("valid", "test"):
        metrics[split] = task.evaluate(
            loaded["model"],
            loaded["vocab"],
            parts["dataset"],
            split,
            data_cfg.eval_batch_size,
            device,
            data_cfg.bptt,
        )
    history = summary["history"]
    best_epoch = min(history, key=lambda r: r["loss"])["epoch"] if history else None
    record = {
        "recipe": recipe.info.name,
        "aim": recipe.info.aim,
        "task": recipe.info.task,
        "dataset": parts["dataset"].name,
        "metrics": metrics,
        "epochs": len(history),
        "best_epoch": best_epoch,
        "parameters": sum(p.numel() for p in loaded["model"].parameters()),
        "wall_time_s": round(summary["wall_time"], 1),
        "cpu_time_s": round(summary["cpu_time"], 1),
        "device": device_description(device),
        "torch": torch.__version__,
        "commit": commit,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # the command that started the run; a resumed run lists every session
        "command": summary["sessions"][0]["command"] if summary.get("sessions") else command,
    }
    if len(summary.get("sessions", [])) > 1:
        record["sessions"] = summary["sessions"]
    (run_dir / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    for split, m in metrics.items():
        if hasattr(task, "summary_line"):  # e.g. a tagger's accuracy instead of perplexity
            print(f"{split:5s} | {task.summary_line(m)}", flush=True)
            continue
        extra = f" | bpc {m['bpc']:.4f}" if "bpc" in m else ""
        print(f"{split:5s} | ppl {m['ppl']:8.2f}{extra} | {m['tokens']} tokens", flush=True)
    return record
