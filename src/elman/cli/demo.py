"""``elman demo``: check the recurrent core, train a small LSTM LM on PTB, evaluate, sample.

This is what ``make demo`` runs, in about one CPU minute. It ends by listing the files it wrote
and the commands to type next in a fresh shell. Without the PTB files it says how to get them
and exits 2.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TypedDict

from elman.cli.options import integer

# Shipped inside the package (package data), so the demo works from any install, not only
# from a source checkout.
RECIPE = Path(__file__).resolve().with_name("demo.toml")


class CellOptions(TypedDict, total=False):
    """The cell options the core check gives ``Recurrent`` (none for elman and lstm)."""

    variant: str  # gru: "cudnn", the variant torch's fused kernel computes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="a one-CPU-minute tour: train, evaluate and sample a small LM",
        description=__doc__,
    )
    p.add_argument("--out", default="runs/demo", help="run folder (replaced)")
    p.add_argument(
        "--steps",
        type=integer(1),
        default=None,
        help="stop training after this many steps (default: the recipe's epochs)",
    )
    p.set_defaults(func=run)


def core_check() -> None:
    """The fused (PyTorch kernel) and unrolled (textbook equations) paths agree."""
    import torch

    from elman.nn import Recurrent

    torch.manual_seed(0)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    print("recurrent core: fused kernel vs the lecture's equations, unrolled (float64)")
    for cell in ("elman", "lstm", "gru"):
        opts: CellOptions = {"variant": "cudnn"} if cell == "gru" else {}
        fused = Recurrent(cell, 5, 4, num_layers=2, bidirectional=True, impl="fused", **opts)
        unrolled = Recurrent(cell, 5, 4, num_layers=2, bidirectional=True, impl="unrolled", **opts)
        unrolled.load_state_dict(fused.state_dict())  # one weight layout serves both
        out_f, _ = fused.double()(x)
        out_u, _ = unrolled.double()(x)
        print(f"  {cell:5s}  max |difference| = {(out_f - out_u).abs().max().item():.1e}")


RUN_FILES = (
    "last.pt", "best.pt", "metrics.jsonl", "recipe.json", "results.json", "tensorboard",
    ".lock",  # elman train's run-folder lock (elman.tasks.training.hold_run_folder)
)  # fmt: skip


def check_run_folder(out: Path) -> None:
    """``--out`` is replaced: refuse a folder holding anything but an earlier run."""
    from elman.errors import ElmanError

    if out.exists() and not out.is_dir():
        raise ElmanError(f"--out {out} is a file; give a folder for the demo run")
    if out.is_dir():
        # a crash may leave a checkpoint's temporary file (.last.pt.XXXX.tmp)
        other = sorted(
            p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.endswith(".tmp")
        )
        if other:
            raise ElmanError(
                f"--out {out} holds files that are not an elman run ({', '.join(other[:3])}); "
                "the demo replaces its folder, so choose another one"
            )


# What each file of the run folder is, in the order they are listed after the run.
FILE_NOTES = {
    "best.pt": "the weights with the best validation perplexity (what eval and generate read)",
    "last.pt": "the latest weights and optimiser state (`elman train --resume` continues it)",
    "metrics.jsonl": "loss, perplexity and speed every 100 steps and every epoch",
    "recipe.json": "the recipe as it ran",
    "results.json": "valid and test perplexity, with the command, commit and device",
}


def shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (``.venv/bin/activate``)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shell_setup() -> list[tuple[str, str]]:
    """What a fresh shell needs for ``elman …`` to work as it did here: (command, why) pairs.

    ``make demo`` runs ``.venv/bin/python`` without activating the virtualenv (so ``elman`` is
    not on PATH afterwards) and exports ELMAN_DATA to its own commands only (make marks them
    with MAKELEVEL).
    """
    lines = []
    in_venv = sys.prefix != sys.base_prefix
    if in_venv and os.environ.get("VIRTUAL_ENV") != sys.prefix:
        activate = shlex.quote(shown(Path(sys.prefix) / "bin" / "activate"))
        lines.append((f"source {activate}", "puts `elman` on PATH"))
    root = os.environ.get("ELMAN_DATA")
    if root and "MAKELEVEL" in os.environ:
        lines.append((f"export ELMAN_DATA={shlex.quote(root)}", "make set it for the demo only"))
    return lines


def where_data() -> str:
    """Why the corpora are read from where they are."""
    if not os.environ.get("ELMAN_DATA"):
        return "the default; ELMAN_DATA changes it"
    return "ELMAN_DATA, set by make" if "MAKELEVEL" in os.environ else "ELMAN_DATA"


def next_steps(out: str) -> str:
    """The files the run wrote, where the corpora are, and the commands to type next."""
    from elman.data.datasets import data_root

    folder = Path(out).resolve()
    files = [
        f"  {name:<14} {note}" for name, note in FILE_NOTES.items() if (folder / name).exists()
    ]
    run_dir = shlex.quote(out)
    commands = [
        *shell_setup(),
        (f"elman eval {run_dir} --split test", "perplexity, every token scored once"),
        (f'elman generate {run_dir} --prompt "the market" --tokens 40 --seed 1', "sample text"),
        ("elman --help", 'every command; README.md, "Using it"'),
    ]
    return "\n".join(
        [
            f"\nthe run is in {folder}:",
            *files,
            f"the corpora are read from {data_root()} ({where_data()})",
            f"\nnext, in a new shell in {Path.cwd()}:",
            *(f"  {command:<44} # {why}" for command, why in commands),
        ]
    )


def run(args: argparse.Namespace) -> int:
    import shutil

    from elman.data.datasets import resolve
    from elman.tasks.loading import load
    from elman.tasks.training import train

    start_cpu, start_wall = time.process_time(), time.perf_counter()
    core_check()
    resolve("ptb").path("train")  # a missing corpus stops here with how to get it
    check_run_folder(Path(args.out))
    shutil.rmtree(args.out, ignore_errors=True)
    overrides = [f"train.max_steps={args.steps}"] if args.steps else []
    print(f"\ntraining {RECIPE.name}: 1 x 256 LSTM language model on PTB (about a CPU minute)")
    summary = train(RECIPE, overrides=overrides, out=args.out, command="elman demo")
    if summary["interrupted"]:
        return 0
    print("\nsample (temperature 0.8):")
    print(load(args.out).generate("the company said", 40, temperature=0.8, seed=1))
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    print(f"\ndone in {cpu / 60:.1f} CPU minutes ({wall / 60:.1f} minutes of wall time)")
    print(next_steps(args.out))
    return 0
