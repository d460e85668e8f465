"""benchmarks/faults_checkpoint.py (not a package), imported by path: the fault tests and the
recorded benchmark run the same flip, damage and classify code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    if "faults_checkpoint" in sys.modules:
        return sys.modules["faults_checkpoint"]
    path = ROOT / "benchmarks" / "faults_checkpoint.py"
    spec = importlib.util.spec_from_file_location("faults_checkpoint", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults_checkpoint"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


benchmark = _load()
