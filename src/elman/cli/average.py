"""``elman average CKPT [CKPT …] --out FILE`` or ``elman average --last K RUN_DIR --out FILE``.

Averages the weights of checkpoints of one run, element by element (as fairseq's
average_checkpoints.py), into one checkpoint that elman eval, elman translate and elman.load
read like any other::

    elman train recipes/multi30k-attention.toml --set train.keep_epochs=5
    elman average --last 5 runs/multi30k-attention --out runs/multi30k-attention/avg5.pt
    elman average runs/X/epoch8.pt runs/X/epoch9.pt runs/X/epoch10.pt --out runs/X/avg.pt

--last K takes the K newest epochN.pt of RUN_DIR (the trainer keeps them with
--set train.keep_epochs=K). The checkpoints must hold the same model (task, [model] section,
vocabularies), else one line says what differs. The average has no optimiser state, so
elman train --resume refuses it. --out is written whole or not at all.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from elman.cli.options import check_output, integer

MAX_LAST = 1000
TRAINER_FILES = re.compile(r"last\.pt|best\.pt|epoch\d+\.pt")  # what the trainer writes itself


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average", help="average the weights of checkpoints of one run", description=__doc__
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CKPT",
        help="the checkpoints (.pt) to average, or with --last one run folder",
    )
    p.add_argument("--out", required=True, help="the averaged checkpoint to write (.pt)")
    p.add_argument(
        "--last",
        type=integer(1, MAX_LAST),
        metavar="K",
        help="average the K newest epochN.pt of the run folder given (default: the files given)",
    )
    p.set_defaults(func=run)


def inputs(checkpoints: Sequence[str | Path], last: int | None) -> list[Path]:
    """The checkpoint files to average: those given, or the ``last`` newest epochs of the one
    run folder given."""
    from elman.errors import ElmanError
    from elman.train.averaging import last_epochs

    if last is None:
        return [Path(c) for c in checkpoints]
    if len(checkpoints) != 1:
        raise ElmanError(f"--last {last} takes one run folder; got {len(checkpoints)} paths")
    return last_epochs(checkpoints[0], last)


def average(checkpoints: Sequence[str | Path], out: str | Path, *, last: int | None = None) -> int:
    """Average ``checkpoints`` (or the ``last`` epochs of one run folder) into ``out``."""
    from elman.errors import ElmanError
    from elman.train.averaging import average_checkpoints

    out = Path(out)
    if TRAINER_FILES.fullmatch(out.name):
        raise ElmanError(
            f"--out {out}: the trainer writes last.pt, best.pt and epochN.pt itself (and "
            "resumes from last.pt); name the average otherwise, e.g. avg.pt"
        )
    paths = inputs(checkpoints, last)
    if any(p.resolve() == out.resolve() for p in paths):
        raise ElmanError(f"--out {out} is one of the checkpoints averaged; write a new file")
    check_output(out, "--out")  # before reading gigabytes of checkpoints
    average_checkpoints(paths, out)
    shown = str(paths[0]) if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"
    print(f"averaged {len(paths)} checkpoint(s) ({shown}) into {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    return average(args.checkpoints, args.out, last=args.last)
