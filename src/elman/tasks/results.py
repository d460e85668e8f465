"""Results records: what ``results/*.json`` (and a run's ``results.json``) hold.

Every record names the recipe (or evaluation), what it aims at, the metrics of ``valid`` and
``test`` and the provenance of the numbers (:func:`elman.provenance.provenance`: command,
commit, device, torch, date). ``elman results`` builds the README's table from these files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from elman.inference.dynamic import DynamicSettings
from elman.provenance import provenance
from elman.tasks.evaluation import HEADLINE, Evaluation, Scores, evaluate
from elman.tasks.loading import load
from elman.train.trainer import pick_device


def training_record(
    *,
    recipe: Any,
    dataset: str,
    metrics: dict[str, Any],
    summary: dict[str, Any],
    parameters: int,
    device: torch.device,
    command: str,
    commit: str,
) -> dict[str, Any]:
    """The record of a finished training run: ``best.pt``'s valid and test metrics.

    ``commit`` is the code checked out when the run started; ``command`` the one that started
    it (a resumed run lists every session under ``sessions``).
    """
    history = summary["history"]
    best_epoch = min(history, key=lambda r: r["loss"])["epoch"] if history else None
    sessions = summary.get("sessions", [])
    record = {
        "recipe": recipe.info.name,
        "aim": recipe.info.aim,
        "task": recipe.info.task,
        "dataset": dataset,
        "metrics": metrics,
        "epochs": len(history),
        "best_epoch": best_epoch,
        "parameters": parameters,
        "wall_time_s": round(summary["wall_time"], 1),
        "cpu_time_s": round(summary["cpu_time"], 1),
        **provenance(device, sessions[0]["command"] if sessions else command),
    }
    record["commit"] = commit
    curve = [_curve_point(r) for r in history if "cpu_time" in r]
    if curve:
        record["curve"] = curve
    if len(sessions) > 1:
        record["sessions"] = sessions
    return record


def _curve_point(epoch: dict[str, Any]) -> dict[str, Any]:
    """One epoch of the learning curve: its validation metrics against CPU and wall time."""
    point = {
        "epoch": epoch["epoch"],
        "cpu_time_s": round(epoch["cpu_time"], 1),
        "wall_time_s": round(epoch["wall_time"], 1),
    }
    point |= {k: round(v, 4) for k, v in epoch.items() if k in HEADLINE and isinstance(v, float)}
    if epoch.get("finetuning"):
        point["finetuning"] = True
    return point


def evaluation_record(
    checkpoint: str | Path,
    *,
    data: str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    ensemble: Sequence[str | Path] = (),
    mix: str | None = None,
    lam: str | float = "auto",
    cache: int | None = None,
    cache_theta: str | float = "auto",
    cache_lambda: str | float = "auto",
    dynamic: DynamicSettings | None = None,
    aim: str = "",
    command: str | None = None,
    evaluations: dict[str, Evaluation] | None = None,
    scores: Scores | None = None,
) -> dict[str, Any]:
    """Score valid and test and return a results record like ``elman train --results`` writes.

    The record's name is the run folder's (``+ARPA`` stem with ``mix``, ``+cacheN`` with a
    cache, ``+dynamic`` with dynamic evaluation, ``-ensembleN`` with an ensemble); with ``mix``,
    ``cache`` or ``dynamic`` each split's metrics are the mixture's, the cache's or the adapted
    model's (beside the plain model's perplexity), in that order of precedence, with the others
    asked for under ``cache`` and ``dynamic``. ``evaluations``, when
    given, receives the two :class:`Evaluation` objects (``elman eval`` prints one of them
    instead of scoring its split again). ``scores``: the memo of earlier evaluations of the
    same model (loaded with ``ensemble``) on the same corpus, whose scores are reused.
    """
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    last: Evaluation | None = None
    if scores is None:
        loaded = load(checkpoint, device, ensemble=ensemble)
        scores = Scores(loaded, loaded.dataset(data), batch_size)  # each split adapted to once
    for split in ("valid", "test"):
        last = evaluate(
            scores.loaded, split, batch_size=batch_size, mix=mix, lam=lam, cache=cache,
            cache_theta=cache_theta, cache_lambda=cache_lambda, dynamic=dynamic, scores=scores,
        )  # fmt: skip
        if evaluations is not None:
            evaluations[split] = last
        flat = last.to_dict()
        adapted = [k for k in ("mix", "cache", "dynamic") if flat.get(k) is not None]
        if adapted:  # the last step's numbers, and each step below it under its name
            below = {k: flat[k] for k in adapted[1:]}
            metrics[split] = {**flat.pop(adapted[0]), "tokens": flat["tokens"], **below}
        else:
            metrics[split] = flat
    assert last is not None
    adapted_by = {"mix": bool(mix), "cache": cache is not None, "dynamic": dynamic is not None}
    path = Path(checkpoint)
    name = path.name if path.is_dir() else path.parent.name
    if path.is_file() and path.name != "best.pt":  # last.pt, epoch9.pt, an average: say which
        name += "-" + path.stem
    if mix:
        name += "+" + Path(mix).stem
    if cache is not None:
        name += f"+cache{cache}"
    if dynamic is not None:
        name += "+dynamic" + ("" if dynamic.rule == "sgd" else f"-{dynamic.rule}")
    if ensemble:
        name += f"-ensemble{1 + len(ensemble)}"
    return {
        "recipe": name,
        "aim": aim,
        "task": " ".join(["eval"] + [f"--{k}" for k, on in adapted_by.items() if on]),
        "dataset": last.data,
        "metrics": metrics,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance(pick_device(device), command),
    }
