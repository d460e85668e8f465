"""Where a number comes from: the command, the commit, the device, torch and the UTC date.

Every results file (``elman train --results``, ``elman eval --results``, ``elman lab``) and every
benchmark record carries the same five fields, built here and nowhere else::

    device    "cpu (x86_64 AVX2, 1 threads)" or "cuda (NVIDIA H200)"
    torch     "2.13.0"
    commit    "f00569f" (with "-dirty" when tracked files differ from it: not reproducible)
    date      "2026-11-29T18:49:41+00:00"
    command   "elman train recipes/ptb-small-lstm.toml --set train.threads=1"

torch is never imported here: a process that has not loaded it (the n-gram path, its
benchmark) records ``"torch": null`` and the CPU without a thread count.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=_HERE)
    return out.stdout.strip()


def git_commit() -> str:
    """The short hash of the checked-out commit, ``-dirty`` when tracked files differ from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty and commit != "unknown" else "")


def elman_version() -> str:
    """The installed elman's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("elman")
    except PackageNotFoundError:  # run from a source tree without installing
        return "0+unknown"


def utc_now() -> str:
    """The current UTC time to the second, ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def command_line(argv: list[str] | None = None, prog: str = "elman") -> str:
    """The command as typed: ``prog`` and the shell-quoted arguments (default ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([prog, *(shlex.quote(a) for a in args)])


def device_description(device: Any = None) -> str:
    """``cuda (GPU name)`` or ``cpu (machine vector-unit, N threads)``; ``device`` a torch.device
    or name."""
    cpu = platform.processor() or platform.machine()
    torch = sys.modules.get("torch")
    if torch is None:  # nothing here ran on torch
        return f"cpu ({cpu})"
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    # the vector unit (AVX2, AVX512) sets a CPU's speed, and whether bfloat16 is fast on it
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{device.type} ({cpu} {capability}, {torch.get_num_threads()} threads)"


def provenance(device: Any = None, command: str | None = None) -> dict[str, str | None]:
    """The five provenance fields of a results record (module docstring)."""
    torch = sys.modules.get("torch")
    return {
        "device": device_description(device),
        "torch": torch.__version__ if torch is not None else None,
        "commit": git_commit(),
        "date": utc_now(),
        "command": command or command_line(),
    }


def machine(load_before: tuple[float, float, float] | list[float]) -> dict[str, Any]:
    """The machine a benchmark ran on, and its load average before (given) and after (now):
    this machine is shared, so timings are read beside the load they ran under."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
