"""The command line as a whole: plain help with defaults, positionals anywhere, and every number
checked (finite, in range) while the command line is read, in one line naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from elman.cli import COMMANDS, build_parser, main
from elman.cli.options import integer, plain, real


def parsers(
    parser: argparse.ArgumentParser | None = None,
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, the top one and each (sub-)command's."""
    parser = parser or build_parser()
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def test_every_help_is_plain_text_without_markup():
    for prog, parser in parsers():
        text = parser.format_help()
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", "`"):
            assert markup not in text, f"{prog} --help shows {markup!r}"


def test_every_option_shows_its_default():
    for prog, parser in parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # flags (--json, --help) and required options have no default
            shown = formatter._expand_help(action) if action.help else ""
            assert "default" in shown.lower(), f"{prog} {action.option_strings[0]}: {shown!r}"


def test_elman_help_describes_each_command_in_one_line(capsys):
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in COMMANDS:
        (line,) = [x for x in lines if x.strip().split(" ")[0] == name]
        assert len(line.split()) > 2, f"{name} has no description on its line: {line!r}"
    assert "``" not in "\n".join(lines) and "COMMANDS" not in "\n".join(lines)


def test_a_command_line_builds_the_parser_of_its_command_alone(capsys):
    commands = [
        a for a in build_parser("ngram")._actions if isinstance(a, argparse._SubParsersAction)
    ]
    assert list(commands[0].choices) == ["ngram"]
    assert main(["ngram", "eval", "--help"]) == 0
    assert "usage: elman ngram eval" in capsys.readouterr().out
    assert main(["nonsense"]) == 2  # not a command: every command is listed
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and all(f"'{name}'" in err for name in COMMANDS)


def test_version_is_printed_when_asked_for(capsys):
    from elman.provenance import elman_version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"elman {elman_version()}\n"


def test_plain_removes_restructuredtext():
    text = "``elman eval`` calls :func:`elman.evaluate` and :class:`~elman.tasks.Loaded`, `x`::\n"
    assert plain(text) == "elman eval calls elman.evaluate and Loaded, x:\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["tag", "CKPT", "--conllu", "IN.conllu", "--out", "OUT"],
        ["tag", "--conllu", "CKPT", "IN.conllu"],
        ["tag", "CKPT", "--batch-size", "8", "IN.conllu"],
    ],
)
def test_positional_inputs_before_or_after_the_options(argv):
    args = build_parser().parse_args(argv)
    assert (args.checkpoint, args.input) == ("CKPT", "IN.conllu")
    assert args.conllu == ("--conllu" in argv)


def test_translate_input_after_the_options():
    args = build_parser().parse_args(["translate", "CKPT", "--beam", "3", "IN.txt"])
    assert (args.checkpoint, args.input, args.beam) == ("CKPT", "IN.txt", 3)


# Each bad value stops while the command line is read, before any file is opened: the
# checkpoint and data named here do not exist.
BAD = [
    (["eval", "C", "--batch-size", "0"], "argument --batch-size: must be in 1 … 100000, got 0"),
    (["eval", "C", "--batch-size", str(10**9)], "argument --batch-size: must be in 1 … 100000"),
    (["eval", "C", "--threads", "0"], "argument --threads: must be in 1 … 1024, got 0"),
    (["eval", "C", "--threads", "two"], "argument --threads: expected an integer"),
    (["eval", "C", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N, mps"),
    (["generate", "C", "--temperature", "nan"], "argument --temperature: must be a finite number"),
    (["generate", "C", "--temperature", "-1"], "argument --temperature: must be a finite"),
    (["generate", "C", "--temperature", "inf"], "argument --temperature: must be a finite"),
    (["generate", "C", "--top-p", "nan"], "argument --top-p: must be a finite number > 0"),
    (["generate", "C", "--top-p", "0"], "argument --top-p: must be a finite number > 0 and <= 1"),
    (["generate", "C", "--top-p", "1.5"], "argument --top-p"),
    (["generate", "C", "--top-k", "0"], "argument --top-k: must be at least 1"),
    (["generate", "C", "--tokens", "-5"], "argument --tokens: must be in 0 … 1000000, got -5"),
    (["generate", "C", "--seed", str(2**64)], "argument --seed: must be in 0 … 4294967295"),
    (["generate", "C", "--seed", "-1"], "argument --seed: must be in 0 … 4294967295"),
    (["tag", "C", "--batch-size", "-3"], "argument --batch-size: must be in 1 … 100000"),
    (["translate", "C", "--batch-size", "100001"], "argument --batch-size: must be in 1 … 100000"),
    (["translate", "C", "--beam", "100000"], "argument --beam: must be in 1 … 100, got 100000"),
    (["translate", "C", "--length-penalty", "nan"], "argument --length-penalty"),
    (["translate", "C", "--max-len-ratio", "-1"], "argument --max-len-ratio"),
    (["translate", "C", "--plot-attention", "0", "--plot-out", "a.png"], "--plot-attention"),
    (["ngram", "build", "--data", "D", "--out", "o", "--order", "0"], "argument --order"),
    (["ngram", "build", "--data", "D", "--out", "o", "--order", "21"], "in 1 … 20, got 21"),
    (["ngram", "build", "--data", "D", "--out", "o", "--k", "inf"], "argument --k"),
    (["ngram", "build", "--data", "D", "--out", "o", "--k", "0"], "argument --k"),
    (["ngram", "sample", "M", "--sentences", "-1"], "argument --sentences"),
    (["ngram", "sample", "M", "--max-words", "0"], "argument --max-words"),
    (["vectors", "--data", "D", "--out", "o", "--window", "0"], "argument --window"),
    (["vectors", "--data", "D", "--out", "o", "--threads", "0"], "argument --threads"),
    (["lab", "adding", "--out", "o", "--lr", "nan"], "argument --lr: must be a finite"),
    (["lab", "copy", "--out", "o", "--max-minutes", "inf"], "argument --max-minutes"),
    (["lab", "exploding", "--out", "o", "--scale", "nan"], "argument --scale"),
    (["lab", "gradients", "--out", "o", "--steps", "0"], "argument --steps"),
    (["demo", "--steps", "0"], "argument --steps: must be at least 1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_numbers_are_one_line_naming_the_option(capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("elman: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "usage:" not in err and "Traceback" not in err


def test_number_types_name_their_range():
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be in 1 … 5, got 6"):
        integer(1, 5)("6")
    with pytest.raises(argparse.ArgumentTypeError, match=r"a finite number >= 0 and <= 1"):
        real(0.0, 1.0)("nan")
    assert real(0.0, 1.0)("0.5") == 0.5 and integer(0)("7") == 7


def test_cuda_devices_by_number_pass_the_parser():
    args = build_parser().parse_args(["eval", "C", "--device", "cuda:1"])
    assert args.device == "cuda:1"


@pytest.mark.parametrize("command", ["eval", "generate", "tag", "translate"])
def test_a_device_that_is_not_here_is_one_line_before_loading(capsys, command):
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        cases = [(f"cuda:{n}", f"this machine has {n} CUDA device(s)")]
    else:
        cases = [("cuda", "--device cuda: CUDA is not available here"), ("cuda:1", "CUDA")]
    mps = getattr(torch.backends, "mps", None)
    if not (mps and mps.is_available()):
        cases.append(("mps", "--device mps: MPS is not available here"))
    for name, message in cases:
        # the checkpoint "C" does not exist: the device is refused first
        assert main([command, "C", "--device", name]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
