"""A recipe resolved into typed sections: the ``Recipe`` dataclass every task extends.

A task's recipe type is a dataclass whose fields are the recipe's sections::

    @dataclass
    class LMRecipe(Recipe):          # [recipe] -> info, [train] -> train (from Recipe)
        data: LMDataConfig           # [data]
        model: RNNLMConfig           # [model]

:func:`parse_sections` fills one from TOML tables: every section maps onto its field's dataclass,
every key must be a field of it (a misspelt one is an error listing the valid keys), and a key
that was renamed is an error naming its new name. ``raw`` keeps the resolved tables (every key,
defaults included), which checkpoints store so that a run folder alone rebuilds its model.

Which task a recipe belongs to is read from ``[recipe] task``; the table of tasks lives above
this engine, in :mod:`elman.tasks.table`.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from elman.config import apply_overrides, build_dataclass
from elman.errors import ElmanError
from elman.train.trainer import TrainConfig


@dataclass
class RecipeInfo:
    name: str = "run"
    task: str = "lm"
    aim: str = ""  # the published number the recipe aims at, and its source


# An old "section.key" -> the new keys and values it stands for (used to read old checkpoints,
# and to name the new keys when a recipe or --set still uses the old one).
Renamed = Mapping[str, Callable[[Any], dict[str, Any]]]

NOT_SECTIONS = ("info", "raw")
# One `dropout` for the three places it acts became three keys (as the RNN LM has them).
DROPOUTS = ("embedding", "hidden", "output")


@dataclass
class Recipe:
    """The sections every recipe has; a task's recipe type adds its own (module docstring)."""

    info: RecipeInfo
    train: TrainConfig
    raw: dict[str, Any]  # the resolved TOML tables (stored in checkpoints)
    data: Any  # every task reads a corpus and builds a model; its type narrows these two
    model: Any

    @classmethod
    def sections(cls) -> dict[str, type]:
        """Section name -> its dataclass, in the recipe's order (``recipe`` excluded)."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in NOT_SECTIONS]
        names.sort(key=lambda name: name == "train")  # [train] last, as recipes write it
        return {name: hints[name] for name in names}


R = TypeVar("R", bound=Recipe)


def read_info(raw: dict[str, Any]) -> RecipeInfo:
    """The ``[recipe]`` section: name, task, aim."""
    return build_dataclass(RecipeInfo, raw.get("recipe", {}), "recipe")


def migrate(raw: dict[str, Any], renamed: Renamed) -> dict[str, Any]:
    """A copy of ``raw`` with every renamed key replaced by its new keys (old checkpoints)."""
    out = copy.deepcopy(raw)
    for old, convert in renamed.items():
        section, key = old.split(".", 1)
        table = out.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        for new, value in convert(table.pop(key)).items():
            new_section, new_key = new.split(".", 1)
            target = out.setdefault(new_section, {})
            if target.get(new_key) is None:  # a resolved recipe holds None for an unset key
                target[new_key] = value
    return out


def check_renamed(raw: dict[str, Any], renamed: Renamed) -> None:
    """An old key in a recipe or ``--set`` is an error naming the key(s) that replace it."""
    for old, convert in renamed.items():
        section, key = old.split(".", 1)
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            new = convert(table[key])
            if not new:
                raise ElmanError(
                    f"[{section}] {key} is gone and {table[key]!r} is what elman does by "
                    "default now; delete the key (in the recipe or --set)"
                )
            written = ", ".join(f"{k} = {toml_value(v)}" for k, v in new.items())
            raise ElmanError(
                f"[{section}] {key} was renamed; write {written} instead (in the recipe or --set)"
            )


def toml_value(value: Any) -> str:
    """``value`` as TOML writes it (strings in double quotes)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def parse_sections(
    cls: type[R],
    raw: dict[str, Any],
    overrides: list[str] | None = None,
    *,
    renamed: Renamed | None = None,
    upgrade: bool = False,
) -> R:
    """A ``cls`` recipe from TOML tables and ``--set`` overrides.

    Unknown sections and keys are errors listing the valid ones. A renamed key is an error
    naming its replacement, unless ``upgrade`` (a recipe stored in an older checkpoint), which
    rewrites it into the new keys.
    """
    renamed = renamed or {}
    raw = apply_overrides(raw, overrides or [])
    if upgrade:
        raw = migrate(raw, renamed)
    check_renamed(raw, renamed)
    info = read_info(raw)
    layout = cls.sections()
    unknown = sorted(set(raw) - set(layout) - {"recipe"})
    if unknown:
        raise ElmanError(
            f"unknown section(s) {', '.join(unknown)}; valid: recipe, {', '.join(layout)}"
        )
    sections: dict[str, Any] = {
        name: build_dataclass(tp, raw.get(name, {}), name) for name, tp in layout.items()
    }
    resolved = {"recipe": dataclasses.asdict(info)}
    resolved.update({name: dataclasses.asdict(obj) for name, obj in sections.items()})
    return cls(info=info, raw=resolved, **sections)
