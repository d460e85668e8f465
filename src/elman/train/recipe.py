"""A recipe resolved into its typed sections, and the table of tasks that build from one.

Every recipe has a ``[recipe]`` section naming its task; the task says which dataclass each other
section maps onto. Builders live in one small explicit table, ``TASKS``, not a registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from elman.config import apply_overrides, build_dataclass
from elman.errors import ElmanError


@dataclass
class RecipeInfo:
    name: str = "run"
    task: str = "lm"
    aim: str = ""  # the published number the recipe aims at, and its source


@dataclass
class Recipe:
    info: RecipeInfo
    sections: dict[str, Any]  # section name -> dataclass instance
    raw: dict[str, Any]  # the resolved TOML tables (stored in checkpoints)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None


def task_table() -> dict[str, Any]:
    """Task name -> module with ``SECTIONS`` and ``train``/``load`` functions (imported lazily)."""
    from elman.train import lm, nplm, tagger, translation

    return {"lm": lm, "nplm": nplm, "tagger": tagger, "translation": translation}


def parse_recipe(raw: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Typed sections from TOML tables; unknown tasks, sections and keys are errors."""
    raw = apply_overrides(raw, overrides or [])
    info = build_dataclass(RecipeInfo, raw.get("recipe", {}), "recipe")
    tasks = task_table()
    if info.task not in tasks:
        raise ElmanError(f"[recipe] task = {info.task!r} unknown; valid: {', '.join(tasks)}")
    layout: dict[str, type] = tasks[info.task].SECTIONS
    unknown = sorted(set(raw) - set(layout) - {"recipe"})
    if unknown:
        raise ElmanError(
            f"unknown section(s) {', '.join(unknown)}; valid: recipe, {', '.join(layout)}"
        )
    sections = {name: build_dataclass(cls, raw.get(name, {}), name) for name, cls in layout.items()}
    resolved = {"recipe": dataclasses.asdict(info)}
    resolved.update({name: dataclasses.asdict(obj) for name, obj in sections.items()})
    return Recipe(info=info, sections=sections, raw=resolved)
