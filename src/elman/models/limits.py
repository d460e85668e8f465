"""The valid ranges of model config values, checked when a recipe (or a checkpoint's) is parsed.

A model config's ``__post_init__`` calls these, so a bad value is one line naming the key and
its valid range (``elman.config`` adds the section), long before a model is built: a negative
``init_range``, a ``hidden_size`` of 0, or one of 10**7 that would try to allocate petabytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

MAX_SIZE = 65_536  # widths: embedding, hidden, attention sizes (the recipes use at most 650)
MAX_LAYERS = 256  # stacked recurrent layers
MAX_CONTEXT = 1_024  # NPLM context words (n − 1)


def check_sizes(cfg: Any, names: Iterable[str], low: int = 1, high: int = MAX_SIZE) -> None:
    """Each ``cfg.<name>`` an integer in [low, high]."""
    for name in names:
        value = getattr(cfg, name)
        if not low <= value <= high:
            raise ValueError(f"{name} must be at least {low} and at most {high}, got {value}")


def check_probabilities(cfg: Any, names: Iterable[str]) -> None:
    """Each ``cfg.<name>`` (a dropout or smoothing rate) in [0, 1); NaN is refused too."""
    for name in names:
        p = getattr(cfg, name)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} = {p}: must be in [0, 1)")


def check_init_range(cfg: Any, names: Iterable[str]) -> None:
    """Each ``cfg.<name>`` unset (None: torch's default init) or a finite r > 0 for U(−r, r)."""
    for name in names:
        r = getattr(cfg, name)
        if r is not None and not (0.0 < r < math.inf):
            raise ValueError(f"{name} = {r}: must be a finite number > 0 (U(-r, r)), or unset")


def check_div_value(value: float) -> None:
    """The adaptive softmax's ``adaptive_div_value``: finite and at least 1."""
    if not 1.0 <= value < math.inf:
        raise ValueError(f"adaptive_div_value = {value}: must be a finite number >= 1")
