"""``elman train RECIPE.toml [--set key=value …] [--out RUN_DIR] [--init-from CKPT]``,
``elman train --resume RUN_DIR``.

``--init-from`` fine-tunes: the run starts at the weights of CKPT (a checkpoint or run folder)
and maps its data through CKPT's vocabulary (``--set data.extend_vocab=true`` extends it where
the task allows), with a fresh optimiser and schedule; the recipe's model must be CKPT's.
The Python function is :func:`elman.tasks.training.train`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model from a recipe (or resume a run)", description=__doc__
    )
    p.add_argument("recipe", nargs="?", help="recipe TOML file (see recipes/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set train.lr=0.5 (repeatable; default: none)",
    )
    p.add_argument("--out", help="run folder (default runs/RECIPE_NAME)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR exactly (default: start a new run)",
    )
    p.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from the weights and vocabulary of this checkpoint or run folder, with a "
        "fresh optimiser and schedule (default: fresh weights)",
    )
    p.add_argument(
        "--results",
        metavar="JSON",
        help="also write the final results to this file (default: none)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from elman.cli.options import check_output
    from elman.provenance import command_line
    from elman.tasks.training import train

    if args.results:
        check_output(args.results, "--results")  # now, not after the whole training

    train(
        args.recipe,
        overrides=args.overrides,
        out=args.out,
        resume=args.resume,
        results=args.results,
        command=command_line(),
        init_from=args.init_from,
    )
    return 0
