"""Checkpoint averaging: the mean of the weights of several checkpoints of one run.

As fairseq's ``scripts/average_checkpoints.py`` (and JoeyNMT's): the last k epochs' weights of a
run, averaged element by element, usually translate a little better than the last epoch's
alone (the iterates of the last epochs lie around a minimum; their mean is nearer to it)::

    θ̄ = (1/k) Σ_i θ_i

Every floating-point tensor of the ``model`` entry is summed in float64 and the mean cast back
to its dtype (so k float32 tensors are averaged without float32's rounding at every addition);
integer and boolean tensors (counters, masks) cannot be averaged and are taken from the last
checkpoint. The checkpoints are read one at a time, each with its checksum verified, so memory
holds one checkpoint and the running sum.

They must be of **one model**: the same task, the same recipe ``[model]`` section, the same
vocabularies and level, and the same weight names, shapes and dtypes; otherwise one line says
which checkpoint differs from the first, and in what. Other recipe sections may differ (a
resumed run may have changed its learning rate).

The result is a normal elman checkpoint (:func:`elman.train.checkpoint.save_checkpoint`:
atomic, checksummed) holding the averaged ``model``, the first checkpoint's ``task``,
``recipe``, ``vocab`` (and ``level``), and ``averaged``: the files it was made from. It holds no
optimiser, trainer or RNG state, so ``elman.load``, ``elman eval`` and ``elman translate`` read
it as any checkpoint, and ``elman train --resume`` refuses it in one line
(:func:`refuse_resume`): there is no optimiser state to continue from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError
from elman.train.checkpoint import check_parts, load_checkpoint, model_weights, save_checkpoint

AVERAGED = "averaged"  # the checkpoint entry that marks an average: {"from": [paths], "count": k}
EPOCH_FILE = re.compile(r"epoch(\d+)\.pt")  # what train.keep_epochs keeps (elman.train.trainer)
SAME = ("task", "vocab", "level")  # entries every averaged checkpoint must share


def last_epochs(run_dir: str | Path, k: int) -> list[Path]:
    """The last ``k`` epoch checkpoints ``epochN.pt`` of ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ElmanError(f"--last: {run_dir} is not a run folder")
    found = sorted(
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := EPOCH_FILE.fullmatch(p.name)) and p.is_file()
    )
    if len(found) < k:
        raise ElmanError(
            f"--last {k}: {run_dir} holds {len(found)} epoch checkpoint(s) (epochN.pt); train "
            f"with --set train.keep_epochs={k} to keep the last {k}"
        )
    return [p for _, p in found[-k:]]


def differences(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """What makes ``other`` another model than ``first`` (empty: the same model)."""
    found = [name for name in SAME if first.get(name) != other.get(name)]
    mine, theirs = first["recipe"].get("model", {}), other["recipe"].get("model", {})
    keys = sorted(k for k in {*mine, *theirs} if mine.get(k) != theirs.get(k))
    found += [f"model.{k} ({mine.get(k)!r} vs {theirs.get(k)!r})" for k in keys]
    a, b = first["model"], other["model"]
    if not keys and set(a) != set(b):
        found.append("weight names")
    elif not keys:
        changed = [n for n in a if (a[n].shape, a[n].dtype) != (b[n].shape, b[n].dtype)]
        found += [f"weight {n} {tuple(b[n].shape)} {b[n].dtype}" for n in changed[:3]]
    return found


def average_weights(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The averaged checkpoint of ``paths`` (module docstring), not yet written."""
    if not paths:
        raise ElmanError("give the checkpoints to average")
    first: dict[str, Any] = {}
    sums: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    for path in paths:
        payload = load_checkpoint(path)  # checksum verified; one checkpoint in memory at a time
        check_parts(payload, ("task", "recipe", "vocab", "model"))
        model_weights(payload)  # a table of finite tensors
        if not first:  # what the average keeps of it (not its optimiser state)
            first = {
                key: payload[key] for key in (*SAME, "recipe", "model", "path") if key in payload
            }
        elif found := differences(first, payload):
            raise ElmanError(
                f"{payload['path']} is not the same model as {first['path']}: it differs in "
                f"{', '.join(found)}; average checkpoints of one run"
            )
        for name, tensor in payload["model"].items():
            if tensor.is_floating_point():
                total = tensor.double()
                sums[name] = total if name not in sums else sums[name] + total
            else:
                last[name] = tensor
    k = len(paths)
    weights = {
        name: (sums[name] / k).to(t.dtype) if name in sums else last[name]
        for name, t in first["model"].items()
    }
    kept: dict[str, Any] = {k: first[k] for k in ("task", "recipe", "vocab", "level") if k in first}
    return {**kept, "model": weights, AVERAGED: {"from": [str(p) for p in paths], "count": k}}


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Average ``paths`` into the checkpoint ``out`` (atomic, checksummed); returns ``out``."""
    return save_checkpoint(average_weights(paths), out)


def refuse_resume(payload: dict[str, Any]) -> None:
    """Stop in one line when ``payload`` is an averaged checkpoint: it has no optimiser or
    trainer state, so a run cannot continue from it."""
    if AVERAGED in payload:
        count = payload[AVERAGED].get("count", "several")
        raise ElmanError(
            f"checkpoint {payload.get('path', '?')} is an average of {count} checkpoints "
            "(elman average): it holds no optimiser or trainer state to resume from; resume "
            "the run folder it came from, or start a new run from its weights"
        )
