"""``elman tag CHECKPOINT [INPUT] [--conllu] [--out FILE]``: tag sentences with a trained tagger.

Plain text: one whitespace-tokenised sentence a line in, ``word/TAG word/TAG …`` out; an empty
line is echoed empty. ``--conllu``: CoNLL-U in, the same CoNLL-U out with the tagger's column
(UPOS or XPOS, as trained) filled for every word; every other column is kept as it was.
INPUT defaults to standard input, and may stand before or after the options. --out is written
whole or not at all: the file appears (or replaces an older one) only once every sentence is
tagged.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO, cast

from elman.cli.options import (
    add_device,
    add_threads,
    check_device,
    check_output,
    integer,
    use_threads,
)
from elman.inference.limits import MAX_BATCH


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="tag sentences with a trained tagger", description=__doc__)
    p.add_argument("checkpoint", help="a tagger checkpoint (.pt) or its run folder")
    p.add_argument("input", nargs="?", default="-", help="input file (default: standard input)")
    p.add_argument("--conllu", action="store_true", help="read and write CoNLL-U")
    p.add_argument("--out", help="output file (default: standard output)")
    p.add_argument(
        "--batch-size", type=integer(1, MAX_BATCH), default=64, help="sentences per step"
    )
    add_device(p)
    add_threads(p)
    p.add_argument(
        "--ensemble",
        nargs="+",
        metavar="CKPT",
        default=(),
        help="more taggers: each word gets the tag of the models' mean distribution "
        "(default: none)",
    )
    p.set_defaults(func=run)


def tag(
    checkpoint: str | Path,
    input: str | Path = "-",
    *,
    conllu: bool = False,
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
    ensemble: Sequence[str] = (),
) -> int:
    """Tag ``input`` (a file, or ``-`` for stdin) into ``out`` (a file, or stdout)."""
    from elman.data.conllu import parse_conllu, write_conllu
    from elman.data.text import decode_utf8, read_bytes
    from elman.errors import ElmanError
    from elman.files import atomic_open
    from elman.inference.tagging import tag_conllu, tag_lines
    from elman.tasks.loading import load

    if not 1 <= batch_size <= MAX_BATCH:
        raise ElmanError(f"--batch-size must be in 1 … {MAX_BATCH}, got {batch_size}")
    if out:
        check_output(out, "--out")  # before the model is loaded and the input tagged
    loaded = load(checkpoint, device, ensemble=ensemble, need="tag", command="`elman tag`")

    def tagger(sentences: list[list[str]]) -> list[list[str]]:
        return loaded.tag(sentences, batch_size=batch_size)

    if str(input) == "-":
        name, data = "<stdin>", sys.stdin.buffer.read()
    elif Path(input).is_file() and Path(input).stat().st_size == 0:
        name, data = str(input), b""  # nothing to tag is not an error
    else:
        name, data = str(input), read_bytes(input)
    text = decode_utf8(data, name)

    def write(sink: TextIO) -> None:
        if conllu:
            sentences = parse_conllu(text, name)
            tagged = tag_conllu(tagger, sentences, loaded.recipe.data.column)
            write_conllu(tagged, sink)
        else:
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()  # the newline that ends the last line opens no new one
            tag_lines(tagger, lines, sink)

    if out:
        with atomic_open(out) as sink:  # a run stopped halfway leaves the old file as it was
            write(cast(TextIO, sink))
    else:
        write(sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `elman tag … | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0


def _run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    check_device(args.device)
    return tag(
        args.checkpoint,
        args.input,
        conllu=args.conllu,
        out=args.out,
        batch_size=args.batch_size,
        device=args.device,
        ensemble=args.ensemble,
    )
