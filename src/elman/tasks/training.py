"""``elman.train``: a recipe (or a run folder to resume) in, a trained run folder out.

A run folder holds ``recipe.json`` (the resolved recipe), ``metrics.jsonl``, ``last.pt``,
``best.pt`` and, once training ends, ``results.json``: the best checkpoint's validation and test
metrics with the command, commit, device, date and wall time (:mod:`elman.tasks.results`).

The task of the recipe prepares the model and data (:meth:`Task.prepare`), the one trainer of
:mod:`elman.train.trainer` fits it, and the task evaluates ``best.pt`` on valid and test.

``init_from`` (``--init-from CKPT``) starts a new run at another checkpoint's weights and with
its vocabulary, and nothing else of it: a fresh optimiser, schedule and trainer state, and the
run's own seed (:mod:`elman.tasks.finetuning`). The run's checkpoints and results record it
(``init_from``, ``vocabulary``), and it resumes like any run.

A run folder belongs to one ``elman train`` at a time (:func:`hold_run_folder`: an OS lock that
dies with its process, so a second run on it stops at once and a killed one leaves no stale
lock). A resume continues the same run: only the keys of :data:`RESUME_MAY_CHANGE` may differ
from the checkpoint's recipe, and each of them takes effect (docs/lm.md, "Resuming").
"""

from __future__ import annotations

import copy
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from elman.errors import ElmanError
from elman.files import check_writable, os_error, remove_temporaries, write_json
from elman.provenance import command_line, git_commit, utc_now
from elman.tasks.finetuning import InitSource, VocabReport, init_source, load_start_weights
from elman.tasks.loading import load
from elman.tasks.protocol import Prepared, Task
from elman.tasks.results import training_record
from elman.tasks.table import get_task, parse_recipe, read_recipe
from elman.train import distributed
from elman.train.averaging import refuse_resume
from elman.train.checkpoint import load_checkpoint
from elman.train.config import RESUMABLE
from elman.train.recipe import Recipe
from elman.train.trainer import Trainer, TrainingStopped, pick_device

# The keys a resume may change: the [train] keys of elman.train.config.RESUMABLE, and of the other
# sections those that leave the weights, the carried state and the data position meaningful (a
# moved corpus folder, a larger evaluation batch, another implementation of the same cells).
RESUME_MAY_CHANGE = frozenset(
    {"data.dataset", "data.eval_batch_size", "model.impl"} | {f"train.{k}" for k in RESUMABLE}
)
LOCK_NAME = ".lock"  # in the run folder; the file stays, the lock dies with its process


def check_resume_overrides(stored: dict[str, Any], resolved: dict[str, Any]) -> None:
    """A resume continues the same run: only the keys of RESUME_MAY_CHANGE may differ."""
    changed = [
        f"{section}.{key} ({stored.get(section, {}).get(key)!r} -> {value!r})"
        for section, table in resolved.items()
        if section != "recipe"  # the run's name and aim may be renamed
        for key, value in table.items()
        if value != stored.get(section, {}).get(key) and f"{section}.{key}" not in RESUME_MAY_CHANGE
    ]
    if changed:
        by_section: dict[str, list[str]] = {}
        for name in sorted(RESUME_MAY_CHANGE):
            section, key = name.split(".", 1)
            by_section.setdefault(section, []).append(key)
        allowed = "; ".join(f"[{sec}] {', '.join(keys)}" for sec, keys in by_section.items())
        raise ElmanError(
            f"--resume continues the same run, but --set changes {', '.join(changed)}; a resume "
            f"may change only {allowed} (start a new run with --out to change the others)"
        )


@contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this run alone, and clear what a killed save left in it.

    The lock is ``flock`` on ``RUN_DIR/.lock`` (the ``filelock`` package), taken without
    waiting: a second ``elman train`` on the folder stops at once in one line. The kernel
    releases it when the process ends in any way, ``kill -9`` included, so there are no stale
    locks. Under torchrun rank 0 alone holds it (the other ranks write nothing).
    """
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ElmanError(f"run folder {run_dir} is a file; choose a folder with --out")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(run_dir, err, "cannot create the run folder") from None
    lock = FileLock(run_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ElmanError(
            f"run folder {run_dir} is in use by another elman train; wait for it to end, or "
            "train into another folder with --out"
        ) from None
    except OSError as err:
        raise os_error(run_dir / LOCK_NAME, err, "cannot lock the run folder") from None
    try:
        remove_temporaries(run_dir)  # the temporary files of a save that was killed
        yield
    except BaseException:
        if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
            # failed before writing anything (a missing corpus): leave no empty folder behind
            (run_dir / LOCK_NAME).unlink()
            run_dir.rmdir()
        raise
    finally:
        lock.release()


def resume_target(resume: str | Path) -> tuple[Path, Path]:
    """The run folder and the checkpoint that ``--resume`` names (a folder: its last.pt)."""
    path = Path(resume)
    if path.is_dir():
        if not (path / "last.pt").is_file():
            raise ElmanError(
                f"run folder {path} has no checkpoint yet (no {path / 'last.pt'}): it stopped "
                "before its first save "
                "(an epoch's end, train.save_every, max_steps, Ctrl-C or SIGTERM), so there is "
                f"nothing to resume; start it again with elman train RECIPE --out {path}"
            )
        return path, path / "last.pt"
    if path.is_file():
        return path.parent, path
    raise ElmanError(f"--resume {path}: no such run folder or checkpoint")


def resumed_recipe(payload: dict[str, Any], overrides: list[str] | None) -> tuple[Recipe, Recipe]:
    """The recipe a resume trains with, and the one the checkpoint was written under."""
    stored = copy.deepcopy(payload["recipe"])
    # max_steps stopped the earlier session; a resume runs on to the end unless --set
    # gives a new target (else every resume would stop at once, at the same step).
    stored.get("train", {}).pop("max_steps", None)
    previous = parse_recipe(stored, upgrade=True)
    recipe = parse_recipe(stored, overrides, upgrade=True)
    check_resume_overrides(previous.raw, recipe.raw)
    return recipe, previous


def retitle_for_other_data(recipe: Recipe, own: Recipe, overrides: list[str]) -> None:
    """A recipe run on another corpus than its own is another experiment: its aim (a number
    published for the recipe's corpus) does not hold there, and its results must not pass for
    the recipe's. Unless ``--set recipe.name/aim`` say otherwise, the name gets the corpus and
    the aim says what was run."""
    dataset = recipe.data.dataset
    if dataset == own.data.dataset:
        return
    given = {o.split("=", 1)[0].strip() for o in overrides}
    corpus = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).stem or dataset).strip("-")
    if "recipe.name" not in given:
        recipe.info.name = f"{own.info.name}-on-{corpus or 'data'}"
    if "recipe.aim" not in given:
        recipe.info.aim = (
            f"none stated: {own.info.name}'s recipe on {dataset} (its aim is for "
            f"{own.data.dataset})"
        )
    recipe.raw["recipe"].update(name=recipe.info.name, aim=recipe.info.aim)


def train(
    recipe_path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    results: str | Path | None = None,
    command: str | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train from a recipe, or continue the run in ``resume`` exactly where it stopped;
    ``init_from``: a checkpoint (or run folder) whose weights and vocabulary a new run starts
    from (module docstring).

    Returns the trainer's summary (``interrupted``, ``history``, ``sessions``, ``run_dir`` …)
    and, once training ended, ``results``: the record also written to ``results``.

    SIGINT (Ctrl-C) or SIGTERM saves ``last.pt`` of the step under way and prints how to resume;
    then SIGINT raises ``KeyboardInterrupt`` (exit status 130 from the command line) and SIGTERM
    ``SystemExit(143)``, what the signal itself would have done, less the lost steps.
    """
    commit = git_commit()  # the code that trains is the code checked out now, not at the end
    if results is not None:
        check_writable(results, "results file")  # before the training, not after it
    source = None
    if resume is not None:
        if recipe_path is not None or out is not None:
            raise ElmanError(
                f"--resume {resume} continues a run with the recipe and folder it was started "
                "with; give no recipe or --out beside it (change keys with --set)"
            )
        if init_from is not None:
            raise ElmanError(
                f"--resume {resume} continues a run from its own last checkpoint, and "
                f"--init-from {init_from} starts a new one from other weights; give one of them"
            )
        run_dir, last = resume_target(resume)
    else:
        if recipe_path is None:
            raise ElmanError("give a recipe (elman train recipes/NAME.toml) or --resume RUN_DIR")
        recipe = read_recipe(recipe_path, overrides)
        retitle_for_other_data(recipe, read_recipe(recipe_path), overrides or [])
        if init_from is not None:  # checked before a run folder is made
            task = get_task(recipe.info.task)
            source = init_source(
                str(init_from), recipe, recipe_type=task.recipe_type, renamed=task.renamed
            )
        run_dir = Path(out) if out is not None else Path("runs") / recipe.info.name
    with hold_run_folder(run_dir):
        payload = previous = None
        if resume is not None:  # read under the lock: no other run writes last.pt meanwhile
            payload = load_checkpoint(last)
            refuse_resume(payload)  # an average (elman average) has no optimiser state
            recipe, previous = resumed_recipe(payload, overrides)
        elif (run_dir / "last.pt").exists():
            raise ElmanError(
                f"run folder {run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another folder with --out"
            )
        # torchrun: join the other processes (a no-op for a plain run)
        started = distributed.init_from_env(recipe.train.device)
        finished = False
        try:
            summary = _train(
                recipe, run_dir, payload, previous, results, command or command_line(), commit,
                source,
            )  # fmt: skip
            finished = True
            return summary
        finally:
            if started:
                distributed.cleanup(finished)


def _train(
    recipe: Recipe,
    run_dir: Path,
    payload: dict[str, Any] | None,
    previous: Recipe | None,
    results: str | Path | None,
    command: str,
    commit: str,
    source: InitSource | None = None,
) -> dict[str, Any]:
    """Build the task's parts and the trainer, fit, and (rank 0) write the results."""
    task, prepared, trainer = start_run(recipe, run_dir, payload, previous, source)
    main = distributed.is_main()  # only rank 0 writes and prints
    trainer.sessions.append(
        {"command": command, "commit": commit, "from_step": trainer.global_step, "date": utc_now()}
    )
    try:
        summary = trainer.fit()
    except TrainingStopped as stop:
        if main:
            print(
                f"stopped at step {stop.step} ({stop.signal_name}); continue with "
                f"`elman train --resume {run_dir}`",
                flush=True,
            )
        if stop.signum == signal.SIGTERM:  # exit as SIGTERM's convention says, 128 + 15
            raise SystemExit(stop.exit_code) from None
        raise
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
    origin = {key: trainer.meta[key] for key in ORIGIN if key in trainer.meta}
    record = final_results(recipe, run_dir, task, prepared, summary, command, commit, origin)
    summary["results"] = record
    if results is not None:
        write_json(results, record)
    return summary


def start_run(
    recipe: Recipe,
    run_dir: Path,
    payload: dict[str, Any] | None = None,
    previous: Recipe | None = None,
    source: InitSource | None = None,
) -> tuple[Task, Prepared, Trainer]:
    """The task's parts and the trainer of a run, before its first step: fresh, resumed from
    ``payload`` (the run's own last checkpoint) or initialised from ``source`` (--init-from)."""
    task = get_task(recipe.info.task)
    vocab = task.vocab_from_dict(payload["vocab"]) if payload is not None else None
    torch.manual_seed(recipe.train.seed)  # the model's initial weights depend on it
    prepared = task.prepare(recipe, vocab=vocab)
    if vocab is not None and prepared.vocab != vocab:  # an extension the data now changes
        raise ElmanError(
            f"the checkpoint's vocabulary does not match the one its recipe gives on "
            f"{prepared.dataset.name}; resume with the data it was trained on"
        )
    origin = run_origin(prepared, payload, source)
    if source is not None:
        load_start_weights(prepared.model, source.payload)
    main = distributed.is_main()  # only rank 0 writes and prints
    if main:
        write_json(run_dir / "recipe.json", recipe.raw)
        if source is not None:
            print(source.line(), flush=True)
        if "vocabulary" in origin:
            print(VocabReport.from_dict(origin["vocabulary"]).line(), flush=True)
    meta = {**prepared.checkpoint_meta(task.name, recipe), **origin}
    trainer = Trainer(
        prepared.model, recipe.train, prepared.train_data, prepared.validate, run_dir, meta
    )
    if payload is not None:
        trainer.load_state_dict(payload, previous.train if previous is not None else None)
    return task, prepared, trainer


ORIGIN = ("init_from", "vocabulary")  # what a run's checkpoints say it started from


def run_origin(
    prepared: Prepared, payload: dict[str, Any] | None, source: InitSource | None
) -> dict[str, Any]:
    """``init_from`` (the checkpoint the weights came from) and ``vocabulary`` (how the data
    fits another checkpoint's vocabulary), where the run has them. A resume keeps what its
    first session found: its own prepare no longer sees the other checkpoint's vocabulary."""
    if payload is not None:
        return {key: payload[key] for key in ORIGIN if key in payload}
    origin: dict[str, Any] = {}
    if source is not None:
        origin["init_from"] = source.record()
    if prepared.vocab_report is not None:
        origin["vocabulary"] = prepared.vocab_report.to_dict()
    return origin


def final_results(
    recipe: Recipe,
    run_dir: Path,
    task: Task,
    prepared: Prepared,
    summary: dict[str, Any],
    command: str,
    commit: str,
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``best.pt`` on valid and test and write ``results.json`` into the run folder."""
    device = pick_device(recipe.train.device, "train.device")
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
    record.update(origin or {})  # init_from and vocabulary, for runs that have them
    write_json(run_dir / "results.json", record)
    for split, m in metrics.items():
        print(f"{split:5s} | {task.summary(m)}", flush=True)
    return record
