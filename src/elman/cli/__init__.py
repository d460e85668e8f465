"""The ``elman`` command line: one sub-command module per task, listed in ``COMMANDS``.

Each module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` to a function taking the parsed arguments and returning an exit code.
Building the parser imports every module, so they import torch and the other heavy
packages inside their functions: ``elman --help``, ``elman data`` and ``elman ngram``
never load torch (tests/cli/test_no_torch.py).
A user-facing :class:`~elman.errors.ElmanError` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from elman.errors import ElmanError

# Sub-command modules, in the order they appear in `elman --help`.
COMMANDS = [
    "demo",
    "data",
    "train",
    "eval",
    "generate",
    "tag",
    "translate",
    "average",
    "export",
    "score",
    "rescore",
    "results",
    "serve",
    "ngram",
    "vectors",
    "lab",
]


DESCRIPTION = """\
elman: n-gram, feed-forward and recurrent language models, taggers and translation
models on PyTorch. Train them from recipes, then evaluate, sample, tag and translate."""
EPILOG = "Each command has its own help: elman COMMAND --help."


def build_parser() -> argparse.ArgumentParser:
    from elman.cli.options import Parser
    from elman.provenance import elman_version

    parser = Parser(prog="elman", description=DESCRIPTION, epilog=EPILOG)

    parser.add_argument("--version", action="version", version=f"elman {elman_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"elman.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (one line printed)
        return stop.code if isinstance(stop.code, int) else 2
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    # Warnings are for people here: one line each, no source line.
    warnings.showwarning = lambda msg, *a, **k: print(f"elman: warning: {msg}", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except ElmanError as err:
        print(f"elman: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("elman: interrupted", file=sys.stderr)
        return 130
