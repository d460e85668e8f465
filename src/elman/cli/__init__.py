"""The ``elman`` command line: one sub-command module per task, listed in ``COMMANDS``.

Each module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` to a function taking the parsed arguments and returning an exit code.
Building the whole parser imports every module, so they import torch and the other heavy
packages inside their functions: ``elman --help``, ``elman data`` and ``elman ngram``
never load torch (tests/cli/test_no_torch.py). A command line that starts with a command
builds that command's parser alone: importing all sixteen modules was a third of the start
of ``elman ngram eval``.
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


class _Version(argparse.Action):
    """``--version``: the version is looked up (importlib.metadata) only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from elman.provenance import elman_version

        print(f"elman {elman_version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (one of ``COMMANDS``)."""
    from elman.cli.options import Parser

    parser = Parser(prog="elman", description=DESCRIPTION, epilog=EPILOG)

    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if command is None else [command]:
        importlib.import_module(f"elman.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    command = args_given[0] if args_given and args_given[0] in COMMANDS else None
    parser = build_parser(command)
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
