"""``elman.load``: any checkpoint (a run folder or a ``.pt`` file) back as a model to ask things.

    import elman

    lm = elman.load("runs/ptb-small-lstm")           # best.pt of the run, on the best device
    lm.evaluate("test")["ppl"]                        # 111.16
    lm.generate("the market", tokens=20, seed=1)
    tagger = elman.load("runs/ud-lines-upos", ensemble=["runs/ud-lines-upos-s2"])
    tagger.tag([["I", "saw", "her", "duck", "."]])

The checkpoint names its task; the task rebuilds the model from the recipe and vocabularies
stored beside the weights (:class:`~elman.tasks.protocol.Loaded`). Loading never runs code from
the file, verifies its checksum, and checks its entries, the weights' shapes against the recipe
and their finiteness before a model is built (:mod:`elman.train.checkpoint`); any problem with
the file is one line naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from elman.errors import ElmanError
from elman.tasks.protocol import Loaded, require
from elman.tasks.table import get_task
from elman.train.checkpoint import check_parts, load_checkpoint
from elman.train.trainer import pick_device


def load(
    path: str | Path,
    device: str | torch.device = "auto",
    *,
    ensemble: Sequence[str | Path] = (),
    need: str | None = None,
    command: str = "elman.load",
) -> Loaded:
    """The model in ``path`` (a checkpoint, or a run folder: its ``best.pt``, else ``last.pt``).

    ``device``: ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
    ``ensemble``: more checkpoints of the same task whose distributions are averaged with this
    one's (taggers); each must fit the first model (the same tag set).
    ``need``: a capability the caller needs (``"tag"``, ``"generate"`` …), checked before the
    model is built; ``command`` names the caller in the error.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    # read on the CPU: the checksum reads every tensor there, and the model moves to dev whole
    payload = load_checkpoint(path, map_location="cpu")
    check_parts(payload, ("task", "recipe", "vocab", "model"))
    task = get_task(payload["task"], where=f"checkpoint {payload['path']}: task")
    if need is not None:
        require(task, need, command, payload["path"])
    if ensemble:
        require(task, "ensemble", "--ensemble", payload["path"])
    try:
        loaded = task.load(payload, dev)
    except ElmanError as err:  # the recipe's or vocabulary's own message: say which file
        message = str(err)
        if payload["path"] not in message:
            message = f"checkpoint {payload['path']}: {message}"
        raise ElmanError(message) from None
    if ensemble:
        for other in ensemble:
            member = load(other, dev)
            if member.task.name != task.name:
                raise ElmanError(
                    f"--ensemble {member.path} is a {member.task.name!r} model; "
                    f"{loaded.path} is a {task.name!r} model: ensemble models of one task"
                )
            task.check_ensemble(loaded, member)
            loaded.ensemble.append(member)
    return loaded
