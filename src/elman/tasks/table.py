"""The table of tasks: ``[recipe] task`` and a checkpoint's ``task`` name one of these.

A plain dictionary, not a registry: a new task is a module in :mod:`elman.tasks` with a
``TASK`` object following :class:`~elman.tasks.protocol.Task`, and one line here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elman.config import apply_overrides, read_toml
from elman.errors import ElmanError
from elman.tasks import lm, nplm, tagger, translation
from elman.tasks.protocol import Task
from elman.train.recipe import Recipe, parse_sections, read_info

TASKS: dict[str, Task] = {
    "lm": lm.TASK,
    "nplm": nplm.TASK,
    "tagger": tagger.TASK,
    "translation": translation.TASK,
}


def get_task(name: Any, where: str = "[recipe] task") -> Task:
    """The task called ``name``; an unknown one is an error listing the valid names."""
    if name not in TASKS:
        raise ElmanError(f"{where} = {name!r} unknown; valid: {', '.join(TASKS)}")
    return TASKS[name]


def parse_recipe(
    raw: dict[str, Any], overrides: list[str] | None = None, *, upgrade: bool = False
) -> Recipe:
    """The typed recipe of its task from TOML tables and ``--set`` overrides.

    ``upgrade`` reads a recipe stored by an older elman (renamed keys take their new names).
    """

    task = get_task(read_info(apply_overrides(raw, overrides or [])).task)
    return parse_sections(task.recipe_type, raw, overrides, renamed=task.renamed, upgrade=upgrade)


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """The recipe in the TOML file ``path``, with ``--set`` overrides."""
    return parse_recipe(read_toml(path), overrides)
