"""What every command shares: its parser, plain help text and checked option values.

* :class:`Parser` reads positional arguments before or after the options (``elman tag CKPT
  --conllu FILE`` as well as ``elman tag --conllu CKPT FILE``), prints a bad argument as one
  line ``elman: error: …`` (exit 2) like every other user error, and shows help as plain text
  with each option's default.
* The ``type=`` functions (:func:`integer`, :func:`real`, ``SEED``, :func:`device`) refuse an
  out-of-range or non-finite number while the command line is read, before any work, with
  the valid range in the message.
* :func:`add_threads` and :func:`use_threads`: the ``--threads`` of the commands that run a
  trained model, one thread by default (why: the comment above ``DEFAULT_THREADS``).
* :func:`check_output`: an output path checked before the work that fills it.

Nothing here imports torch: ``elman --help`` and ``elman ngram`` stay torch-free.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from elman.files import TEMP_SUFFIX, check_writable

# The seeds of the recipes (train.seed) have the same range: the data readers seed their
# generators with seed * 100_003 + epoch, and NumPy's legacy seeds take 32 bits.
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024

# The commands that run a trained model (eval, generate, tag, translate) use one CPU thread
# unless --threads says otherwise. Their work is a long series of small steps (a recurrent
# layer one time step at a time, a few sentences a batch), and torch's default of one thread
# per core splits each small product and then waits at the end of every step for the other
# threads. PyTorch's OpenMP threads spin while they wait, so when the cores are busy (another
# job, a training run, tests) a step lasts until the scheduler runs the descheduled thread
# again: milliseconds per step. Measured on a 2-core machine with one other torch process
# running, evaluating a tiny LM on 3,183 tokens took 0.18-0.52 s with one thread and
# 1.8-5.5 s with two (up to 11 s; issue #16 saw 41.6 s against 0.1 s). On an idle machine a
# large model gains from more threads (a 200-unit LSTM with a 10k softmax: 1.6x with two),
# so --threads N is there for it; a default that is never catastrophic comes first.
DEFAULT_THREADS = 1
THREADS_HELP = (
    "CPU threads for PyTorch (default 1: these small sequential steps only wait for extra "
    "threads, badly so on a busy machine; try the number of cores for a large model on an "
    "idle machine)"
)
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


# --- plain help text -----------------------------------------------------------------
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :func:`elman.evaluate`, :class:`~a.B`


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: ``x``, `x` and :func:`x` become x."""

    def role(m: re.Match[str]) -> str:
        return m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)

    text = _ROLE.sub(role, text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    return text.replace("::\n", ":\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (their examples keep their lines), help in plain text, and
    each option's default unless its help already says it."""

    def __init__(self, prog: str, **kwargs: int) -> None:
        # Wide enough that every command name fits beside its one-line description.
        kwargs.setdefault("max_help_position", 30)
        super().__init__(prog, **kwargs)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures sub-command names at the parent's indent, then prints them one
        # step deeper: `translate` overflowed its column and went onto a line of its own.
        if isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS:
            deeper = self._current_indent + self._indent_increment
            for sub in action._get_subactions():
                length = len(self._format_action_invocation(sub)) + deeper
                self._action_max_length = max(self._action_max_length, length)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help
        if help is None or help == argparse.SUPPRESS:
            return help
        help = plain(help)
        shows_default = (
            action.option_strings
            and action.nargs != 0  # not a flag (store_true, --help, --version)
            and not action.required
            and action.default not in (None, "", (), [], argparse.SUPPRESS)
            and "default" not in help.lower()
        )
        return f"{help} (default: %(default)s)" if shows_default else help


class Parser(argparse.ArgumentParser):
    """argparse with intermixed positionals, one-line errors and plain-text help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        if kwargs.get("description"):
            kwargs["description"] = plain(kwargs["description"])
        super().__init__(*args, **kwargs)
        self._intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # A parser with sub-commands hands the rest to them (argparse cannot intermix those);
        # a command's own parser takes its positionals wherever they stand. Plain argparse
        # fills an optional positional (tag's INPUT) with its default as soon as the first
        # positional is read, so `elman tag CKPT --conllu FILE` left FILE "unrecognized".
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str) -> NoReturn:
        """One line, like every other user error (the usage is one --help away)."""
        self.exit(2, f"elman: error: {plain(message)} (see: {self.prog} --help)\n")


# --- checked numbers and names ------------------------------------------------------------
def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [low, high]."""
    span = f"at least {low}" if high is None else f"in {low} … {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def real(
    low: float | None = None, high: float | None = None, *, above: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [low, high] (``above``: low itself excluded)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if above else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    span = "a finite number" + (f" {' and '.join(parts)}" if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {span}, got {text!r}") from None
        bad_low = low is not None and (value <= low if above else value < low)
        if not math.isfinite(value) or bad_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


SEED = integer(0, MAX_SEED)
THREADS = integer(1, MAX_THREADS)


def device(text: str) -> str:
    """An argparse ``type``: auto, cpu, cuda, cuda:N or mps (whether it is present is
    checked when the model is loaded)."""
    name = text.strip().lower()
    if name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name):
        return name
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; valid: {', '.join(DEVICES)}")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        type=device,
        default="auto",
        help="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps (default auto)",
    )


def check_device(name: str) -> None:
    """Stop in one line when the device asked for is not on this machine: torch would raise
    a RuntimeError traceback ("not linked with support for mps devices") once the model
    moves there. ``auto`` always finds one."""
    from elman.train.trainer import pick_device

    pick_device(name, "--device")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=THREADS, default=DEFAULT_THREADS, help=THREADS_HELP)


def add_dynamic(p: argparse.ArgumentParser, models: str, each: str, stats: str) -> None:
    """--dynamic LR, --dynamic-decay LAMBDA, --dynamic-rule and --dynamic-stats-tokens N:
    dynamic evaluation of ``models``, a step after each ``each`` (a segment, a line) is scored;
    the RMS rule's statistics come from ``stats`` (training text)."""
    p.add_argument(
        "--dynamic", type=real(0.0), metavar="LR",
        help=f"{models}: dynamic evaluation (Krause et al. 2018), one step of this rate on "
        f"each {each} after scoring it (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--dynamic-decay", type=real(0.0, 1.0), default=0.0, metavar="LAMBDA",
        help="with --dynamic: pull the weights back toward the trained ones by this share a step "
        "(default: 0)",
    )  # fmt: skip
    p.add_argument(
        "--dynamic-rule", choices=("sgd", "rms"), default="sgd",
        help="with --dynamic: the update, plain SGD or the paper's RMS rule (each weight's step "
        f"divided by the RMS of its gradient on {stats}; default: sgd)",
    )  # fmt: skip
    p.add_argument(
        "--dynamic-stats-tokens", type=integer(1), default=100_000, metavar="N",
        help=f"with --dynamic-rule rms: the tokens of {stats} whose gradients give the RMS "
        "(default: 100000)",
    )  # fmt: skip


def use_threads(n: int) -> None:
    """PyTorch's intra-op threads for this process (see :data:`DEFAULT_THREADS`)."""
    import torch

    torch.set_num_threads(n)


# --- outputs -----------------------------------------------------------------------------
def check_output(path: str | Path, what: str) -> Path:
    """Stop now, in one line naming ``path`` and the cause, if ``path`` cannot be written
    later; and remove what an earlier run killed while writing ``path`` left (its temporary
    ``.NAME.XXXX.tmp`` files: the file itself was never touched)."""
    path = Path(path)
    check_writable(path, what)
    for leftover in path.parent.glob(f".{glob_escape(path.name)}.*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
    return path


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
