"""``elman.train``: a recipe (or a run folder to resume) in, a trained run folder out.

A run folder holds ``recipe.json`` (the resolved recipe), ``metrics.jsonl``, ``last.pt``,
``best.pt`` and, once training ends, ``results.json``: the best checkpoint's validation and test
metrics with the command, commit, device, date and wall time (:mod:`elman.tasks.results`).

The task of the recipe prepares the model and data (:meth:`Task.prepare`), the one trainer of
:mod:`elman.train.trainer` fits it, and the task evaluates ``best.pt`` on valid and test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError
from elman.provenance import command_line, git_commit, utc_now
from elman.tasks.loading import load
from elman.tasks.protocol import Prepared, Task
from elman.tasks.results import training_record, write_json
from elman.tasks.table import get_task, parse_recipe, read_recipe
from elman.train import distributed
from elman.train.checkpoint import load_checkpoint, resolve_checkpoint
from elman.train.recipe import Recipe
from elman.train.trainer import Trainer, pick_device

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
    """Train from a recipe, or continue the run in ``resume`` exactly where it stopped.

    Returns the trainer's summary (``interrupted``, ``history``, ``sessions``, ``run_dir`` …)
    and, once training ended, ``results``: the record also written to ``results``.
    """
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
        recipe = parse_recipe(stored, overrides, upgrade=True)
        check_resume_overrides(parse_recipe(stored, upgrade=True).raw, recipe.raw)
    else:
        if recipe_path is None:
            raise ElmanError("give a recipe (elman train recipes/NAME.toml) or --resume RUN_DIR")
        recipe = read_recipe(recipe_path, overrides)
        run_dir = Path(out) if out is not None else Path("runs") / recipe.info.name
        if (run_dir / "last.pt").exists():
            raise ElmanError(
                f"run folder {run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another folder with --out"
            )
    # torchrun: join the other processes (a no-op for a plain run)
    started = distributed.init_from_env(recipe.train.device)
    try:
        return _train(recipe, run_dir, payload, results, command or command_line(), commit)
    finally:
        if started:
            distributed.cleanup()


def _train(
    recipe: Recipe,
    run_dir: Path,
    payload: dict[str, Any] | None,
    results: str | Path | None,
    command: str,
    commit: str,
) -> dict[str, Any]:
    """Build the task's parts and the trainer, fit, and (rank 0) write the results."""
    task = get_task(recipe.info.task)
    vocab = task.vocab_from_dict(payload["vocab"]) if payload is not None else None
    torch.manual_seed(recipe.train.seed)  # the model's initial weights depend on it
    prepared = task.prepare(recipe, vocab=vocab)
    main = distributed.is_main()  # only rank 0 writes and prints
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.json").write_text(json.dumps(recipe.raw, indent=2) + "\n")
    meta = prepared.checkpoint_meta(task.name, recipe)
    trainer = Trainer(
        prepared.model, recipe.train, prepared.train_data, prepared.validate, run_dir, meta
    )
    if payload is not None:
        trainer.load_state_dict(payload)
    trainer.sessions.append(
        {"command": command, "commit": commit, "from_step": trainer.global_step, "date": utc_now()}
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
    record = final_results(recipe, run_dir, task, prepared, summary, command, commit)
    summary["results"] = record
    if results is not None:
        write_json(results, record)
    return summary


def final_results(
    recipe: Recipe,
    run_dir: Path,
    task: Task,
    prepared: Prepared,
    summary: dict[str, Any],
    command: str,
    commit: str,
) -> dict[str, Any]:
    """Evaluate ``best.pt`` on valid and test and write ``results.json`` into the run folder."""
    device = pick_device(recipe.train.device)
    loaded = load(run_dir / "best.pt", device)
    bs = recipe.data.eval_batch_size  # this session's: a resume may change it
    metrics = {
        split: task.evaluate(loaded, prepared.dataset, split, batch_size=bs)
        for split in ("valid", "test")
    }
    record = training_record(
        recipe=recipe,
        dataset=prepared.dataset.name,
        metrics=metrics,
        summary=summary,
        parameters=sum(p.numel() for p in loaded.model.parameters()),
        device=device,
        command=command,
        commit=commit,
    )
    write_json(run_dir / "results.json", record)
    for split, m in metrics.items():
        print(f"{split:5s} | {task.summary(m)}", flush=True)
    return record
