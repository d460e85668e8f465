"""The one checkpoint module: atomic writes, safe loads.

A checkpoint is one file written with ``torch.save`` whose content is only tensors and plain
Python values (dicts, lists, str, numbers), so that it loads with ``weights_only=True`` and never
runs code from the file. It is written to a temporary file in the same folder, flushed, fsynced and
renamed over the old one, so a crash never leaves a half-written checkpoint.

Content (every key a plain value)::

    format      "elman-checkpoint"
    version     1
    task        "lm", ...           which task of elman.tasks.table rebuilds the model
    recipe      the resolved recipe (dict of sections)
    vocab       Vocabulary.to_dict() (or a dict of them)
    level       language models: "word" or "char"
    model       the model's state_dict
    optimizer   the optimiser's state_dict
    trainer     epoch, step in epoch, global step, schedule state, early-stopping counters
    rng         torch (and CUDA) RNG states
    carry       the hidden state carried between BPTT batches (list of tensors) or None
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError

FORMAT = "elman-checkpoint"
VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (then its ``best.pt``, else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ElmanError(
            f"run folder {path} holds no best.pt or last.pt; train a model into it first"
        )
    if not path.is_file():
        raise ElmanError(f"checkpoint {path} not found; give a .pt file or a run folder")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a truncated, corrupt or foreign file is an ElmanError naming it."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, pickle.UnpicklingError):  # torch's text is a page on weights_only
            first = "it holds something other than tensors and plain values"
        raise ElmanError(
            f"checkpoint {path} is truncated, corrupt or not an elman checkpoint ({first[:120]}); "
            "use another checkpoint (e.g. last.pt instead of best.pt) or retrain"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ElmanError(f"{path} is not an elman checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise ElmanError(
            f"checkpoint {path} has format version {payload['version']}, newer than this elman "
            f"({VERSION}); upgrade elman"
        )
    payload["path"] = str(path)
    return payload


def load_weights(model: torch.nn.Module, payload: dict[str, Any]) -> torch.nn.Module:
    """Put a checkpoint's weights into ``model``; a shape or name mismatch is an ElmanError."""
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ElmanError(
            f"checkpoint {payload.get('path', '?')}: weights do not match its recipe's "
            f"architecture ({str(err).splitlines()[0][:160]})"
        ) from None
    return model
