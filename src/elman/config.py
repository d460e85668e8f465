"""Recipes: TOML files whose sections map one-to-one onto typed dataclass configs.

A recipe looks like::

    [recipe]
    name = "ptb-small-lstm"
    task = "lm"
    aim = "PTB test perplexity <= 115 (Zaremba et al. 2014, small: 114.5)"

    [data]
    dataset = "ptb"

    [model]
    cell = "lstm"

    [train]
    lr = 1.0

Every key must be a field of the section's dataclass; a misspelt key is an error that lists the
valid ones, never a silent default. ``--set train.lr=0.5`` overrides a key with a TOML literal;
an optional key is unset with the word ``none`` (``--set data.vectors=none``), since TOML has no
null. An empty recipe file is refused (it would train every default on PTB).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from elman.errors import ElmanError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing, malformed or empty file is an ElmanError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ElmanError(f"recipe {path} not found; give the path to a .toml file (see recipes/)")
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ElmanError(f"recipe {path} is not valid TOML: {err}") from None
    if not raw:  # every key has a default: an empty file would silently train on PTB
        raise ElmanError(
            f"recipe {path} is empty; write at least [recipe] name and task and [data] dataset "
            "(see recipes/ for examples)"
        )
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its key path and the TOML value (bare words are strings)."""
    if "=" not in text:
        raise ElmanError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. --set train.lr=0.5")
    key, raw = text.split("=", 1)
    keys = [k.strip() for k in key.split(".") if k.strip()]
    if len(keys) < 2:
        raise ElmanError(f"--set {text!r}: the key needs its section, e.g. train.lr")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as `adam` or `cuda`
    return keys, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with every ``--set`` override written in."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ElmanError(f"--set {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return out


NONE = "none"  # TOML has no null: `--set data.vectors=none` unsets an optional key


def _check_union(section: str, name: str, value: Any, args: tuple[Any, ...]) -> Any:
    """``X | Y | None``: None (or ``"none"``) where allowed, else the first member type the
    value fits."""
    if type(None) in args and (value is None or value == NONE):
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _check_type(section, name, value, arg)
        except ElmanError as err:
            errors.append(err)
    raise errors[0]


def _check_scalar(section: str, name: str, value: Any, tp: type) -> Any:
    """int, float (an int is taken as a float), str or bool, never a bool for an int.

    A float must be finite: TOML writes ``nan`` and ``inf``, and no recipe key means anything
    by them (a NaN rate or dropout would turn every weight into NaN at the first step).
    """
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ElmanError(f"[{section}] {name} = {value!r}: expected {tp.__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ElmanError(f"[{section}] {name} = {value!r}: expected a finite number")
    return value


def _check_type(section: str, name: str, value: Any, tp: Any) -> Any:
    """Light type check for TOML scalars, so `lr = "fast"` fails at load time, not mid-run."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _check_union(section, name, value, typing.get_args(tp))
    if tp in (int, float, str, bool):
        return _check_scalar(section, name, value, tp)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ElmanError(f"[{section}] {name}: expected a table")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ElmanError(f"[{section}] {name}: expected a list")
        return list(value) if origin is list or tp is list else tuple(value)
    return value


def build_dataclass(cls: type[T], values: dict[str, Any], section: str) -> T:
    """Instantiate ``cls`` from a TOML table; unknown keys are an error listing the valid ones."""
    if not isinstance(values, dict):
        raise ElmanError(f"[{section}] must be a table")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ElmanError(
            f"unknown key(s) {', '.join(unknown)} in [{section}]; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(section, k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required key is missing
        raise ElmanError(f"[{section}]: {err}") from None
    except ValueError as err:  # __post_init__ validation
        raise ElmanError(f"[{section}]: {err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (JSON/TOML-serialisable)."""
    return dataclasses.asdict(obj)
