"""``elman translate CHECKPOINT [INPUT] [--beam K] [--n-best K] [--ensemble CKPT …] [--out FILE]``.

Translates raw text, one sentence a line (standard input by default), into one plain-text
translation a line, in order. An empty line gives an empty line; a character never seen in
training is the unknown piece; a line longer than the recipe's ``[decode] max_source_len``
pieces (250 by default) is cut to that many, with a warning on stderr. Decoding follows the
recipe's ``[decode]`` section unless ``--beam``, ``--length-penalty``, ``--max-len-ratio`` or
``--no-repeat-ngram`` say otherwise (``--beam 1`` is greedy search).

``--n-best K`` writes the K best translations of every line in the Moses format, best first,
one a line (the beam is then at least K)::

    ID ||| hypothesis ||| logprob=LOG_P pieces=|Y| ||| SCORE

ID: the input line's number from 0; LOG_P: log P(Y|x), natural log; |Y|: output pieces,
``</s>`` included when written; SCORE: LOG_P / ((5 + |Y|)/6)^α (α: the length penalty), the
score that ranks them. A blank line gets one empty hypothesis with logprob=0 pieces=0.

``--ensemble CKPT …``: decode with the mean of these models' and CHECKPOINT's next-piece
distributions at every step (they must share the subword vocabularies). It takes every path
after it, so put INPUT before it (or read standard input).

Interactive: when standard input is a terminal (and there is no --out), or with
``--interactive``, each line is translated as soon as it is read and its translation written
and flushed, so ``elman translate CKPT -`` serves as a co-process in a pipe.

``--plot-attention N --plot-out FILE.png`` also draws the attention weights with which the
model wrote the translation of input line N (1-based) as a heat map (attention models only).

INPUT may stand before or after the options. --out is written whole or not at all: the file
appears (or replaces an older one) only once every line is translated.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from elman.cli.options import (
    add_device,
    add_threads,
    check_device,
    check_output,
    integer,
    real,
    use_threads,
)
from elman.inference.limits import (
    MAX_BATCH,
    MAX_BEAM,
    MAX_LEN_RATIO,
    MAX_LENGTH_PENALTY,
    MAX_NO_REPEAT_NGRAM,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate", help="translate sentences with a trained model", description=__doc__
    )
    p.add_argument("checkpoint", help="a translation checkpoint (.pt) or its run folder")
    p.add_argument("input", nargs="?", default="-", help="input file (default: standard input)")
    p.add_argument("--out", help="output file (default: standard output)")
    p.add_argument(
        "--beam",
        type=integer(1, MAX_BEAM),
        help=f"beam size K, 1 … {MAX_BEAM} (1: greedy; default: the recipe's)",
    )
    p.add_argument(
        "--length-penalty",
        type=real(0.0, MAX_LENGTH_PENALTY),
        help="α of ((5+|Y|)/6)^α (default: the recipe's)",
    )
    p.add_argument(
        "--max-len-ratio",
        type=real(0.0, MAX_LEN_RATIO),
        help="at most ratio · source pieces + extra output pieces (default: the recipe's)",
    )
    p.add_argument(
        "--no-repeat-ngram",
        type=integer(0, MAX_NO_REPEAT_NGRAM),
        metavar="N",
        help="never write an N-gram twice in one translation; 0: off (default: the recipe's)",
    )
    p.add_argument(
        "--n-best",
        type=integer(1, MAX_BEAM),
        metavar="K",
        help="write the K best translations of each line in the Moses format (default: the "
        "best alone, as plain text)",
    )
    p.add_argument(
        "--ensemble",
        nargs="+",
        metavar="CKPT",
        default=(),
        help="more models: decode with the mean of their distributions and CHECKPOINT's "
        "(default: none)",
    )
    p.add_argument(
        "--interactive",
        action="store_true",
        default=None,
        help="translate each line of standard input as it comes, flushing each answer "
        "(default: when standard input is a terminal)",
    )
    p.add_argument(
        "--batch-size", type=integer(1, MAX_BATCH), default=64, help="sentences per step"
    )
    add_device(p)
    add_threads(p)
    p.add_argument(
        "--plot-attention",
        type=integer(1),
        metavar="N",
        help="draw the attention of input line N (1-based) into --plot-out (default: none)",
    )
    p.add_argument(
        "--plot-out", metavar="PNG", help="the heat map file for --plot-attention (default: none)"
    )
    p.set_defaults(func=run)


def decode_settings(
    recipe_decode, beam, length_penalty, max_len_ratio, no_repeat_ngram=None, n_best=None
):
    """The recipe's [decode] section with the command line's changes, checked. With
    ``n_best`` the beam is at least K: the recipe's or K, whichever is larger, unless --beam
    says (then it must be at least K)."""
    from elman.errors import ElmanError

    if n_best is not None and beam is None:
        beam = max(recipe_decode.beam, n_best)
    if n_best is not None and n_best > beam:
        raise ElmanError(f"--n-best {n_best} needs a beam of at least {n_best}; got --beam {beam}")
    changes = {
        "beam": beam, "length_penalty": length_penalty, "max_len_ratio": max_len_ratio,
        "no_repeat_ngram": no_repeat_ngram,
    }  # fmt: skip
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return dataclasses.replace(recipe_decode, **changes)
    except ValueError as err:
        raise ElmanError(f"--{str(err).split()[0].replace('_', '-')}: {err}") from None


def translate(
    checkpoint: str | Path,
    input: str | Path = "-",
    *,
    out: str | Path | None = None,
    beam: int | None = None,
    length_penalty: float | None = None,
    max_len_ratio: float | None = None,
    no_repeat_ngram: int | None = None,
    n_best: int | None = None,
    ensemble: Sequence[str | Path] = (),
    interactive: bool | None = None,
    batch_size: int = 64,
    device: str = "auto",
    plot_attention: int | None = None,
    plot_out: str | Path | None = None,
) -> int:
    """Translate ``input`` (a file, or ``-`` for stdin) into ``out`` (a file, or stdout).

    ``interactive``: None decides by standard input (a terminal, with no ``out``)."""
    from elman.errors import ElmanError
    from elman.files import atomic_open
    from elman.tasks.loading import load

    if not 1 <= batch_size <= MAX_BATCH:
        raise ElmanError(f"--batch-size must be in 1 … {MAX_BATCH}, got {batch_size}")
    if (plot_attention is None) != (plot_out is None):
        raise ElmanError("--plot-attention N and --plot-out FILE.png go together; give both")
    if plot_attention is not None and ensemble:
        raise ElmanError("--plot-attention draws one model's attention; give no --ensemble")
    interactive = is_interactive(interactive, input, out, plot_attention)
    # Outputs are checked before the model is loaded and hours of decoding start.
    if out:
        check_output(out, "--out")
    if plot_out is not None:
        check_output(plot_out, "--plot-out")
    loaded = load(checkpoint, device, ensemble=ensemble, need="translate", command=COMMAND)
    model, vocab, dev = loaded.model, loaded.vocab, loaded.device
    decode = decode_settings(
        loaded.recipe.decode, beam, length_penalty, max_len_ratio, no_repeat_ngram, n_best
    )
    if plot_attention is not None and model.kind != "attention":
        raise ElmanError(
            f"--plot-attention: {loaded.path} is a {model.kind!r} model, which has no "
            "attention; use a checkpoint of kind = 'attention'"
        )

    def answer(lines: list[str], first: int) -> list[str]:
        return output_lines(loaded, lines, first, decode, n_best, batch_size)

    if interactive:
        return serve(answer)
    lines = read_lines(input)
    if plot_attention is not None and not 1 <= plot_attention <= len(lines):
        raise ElmanError(f"--plot-attention {plot_attention}: the input has {len(lines)} lines")
    outputs = answer(lines, 0)
    if out:
        with atomic_open(out) as sink:  # a run stopped halfway leaves the old file as it was
            sink.writelines(line + "\n" for line in outputs)
    else:
        sys.stdout.writelines(line + "\n" for line in outputs)
    if plot_attention is not None:
        plot_line(model, vocab, lines[plot_attention - 1], decode, dev, plot_out)
    return 0


COMMAND = "`elman translate`"


def is_interactive(
    asked: bool | None, input: str | Path, out: str | Path | None, plot: int | None
) -> bool:
    """Whether to answer line by line: as asked, else when standard input is a terminal and
    the translations go to standard output (a file is written whole, at the end)."""
    from elman.errors import ElmanError

    if asked is None:
        return str(input) == "-" and not out and plot is None and sys.stdin.isatty()
    if asked and str(input) != "-":
        raise ElmanError(f"--interactive reads standard input; give - instead of {input}")
    if asked and (out or plot is not None):
        option = "--out" if out else "--plot-attention"
        raise ElmanError(
            f"--interactive answers on standard output, line by line; give no {option}"
        )
    return asked


def read_lines(input: str | Path) -> list[str]:
    """Every line of ``input`` (a file, or ``-``: standard input), strict UTF-8."""
    from elman.data.text import decode_utf8, read_bytes

    if str(input) == "-":
        name, data = "<stdin>", sys.stdin.buffer.read()
    elif Path(input).is_file() and Path(input).stat().st_size == 0:
        name, data = str(input), b""  # nothing to translate is not an error
    else:
        name, data = str(input), read_bytes(input)
    lines = decode_utf8(data, name).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line opens no new one
    return lines


def output_lines(loaded, lines: list[str], first: int, decode, n_best, batch_size) -> list[str]:
    """The output lines for ``lines``: one translation each, or with ``n_best`` their Moses
    n-best lines, numbered from ``first``."""
    if n_best is None:
        return loaded.translate(lines, decode=decode, batch_size=batch_size)
    from elman.inference.translate import moses_lines

    found = loaded.translate_nbest(lines, n_best, decode=decode, batch_size=batch_size)
    return [row for k, hyps in enumerate(found) for row in moses_lines(first + k, hyps)]


def serve(answer: Callable[[list[str], int], list[str]]) -> int:
    """Interactive mode: read a line of standard input, write its answer, flush, repeat until
    the input ends. ``readline`` returns as soon as a line has arrived (iterating over
    ``sys.stdin`` may read ahead and wait for more), so a co-process gets each answer at once."""
    from elman.errors import ElmanError

    stdin = sys.stdin.buffer
    for number, raw in enumerate(iter(stdin.readline, b""), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ElmanError(
                f"<stdin> line {number}, byte {err.start}: not valid UTF-8 "
                f"(byte 0x{raw[err.start : err.start + 1].hex()}); send UTF-8 text"
            ) from None
        sys.stdout.writelines(row + "\n" for row in answer([line.removesuffix("\n")], number - 1))
        sys.stdout.flush()
    return 0


def plot_line(model, vocab, line: str, decode, device, path) -> None:
    """The heat map of the attention weights for one source line and its translation."""
    from elman.errors import ElmanError
    from elman.inference.translate import attention_map, encode_sources, translate_ids

    if not line.strip():
        raise ElmanError("--plot-attention: that input line is empty; choose a non-empty line")
    source = encode_sources(vocab, [line], decode.max_source_len)[0]
    output = translate_ids(model, [source], decode, 1, device)[0]
    weights = attention_map(model, source, output, device)  # (|y| + 1, |x| + 1)
    src_labels = vocab.src.pieces(source) + ["</s>"]
    tgt_labels = vocab.tgt.pieces(output) + ["</s>"]
    save_heatmap(weights.numpy(), src_labels, tgt_labels, path)


def save_heatmap(weights, src_labels: list[str], tgt_labels: list[str], path) -> None:
    """Rows: output pieces; columns: source pieces; darker = more weight."""
    from elman.errors import ElmanError
    from elman.files import atomic_open

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ElmanError("--plot-attention needs matplotlib; pip install 'elman[plot]'") from None
    fig, ax = plt.subplots(figsize=(1 + 0.4 * len(src_labels), 1 + 0.4 * len(tgt_labels)))
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=90)
    ax.set_yticks(range(len(tgt_labels)), tgt_labels)
    ax.set_xlabel("source piece")
    ax.set_ylabel("output piece")
    fig.tight_layout()
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=100, format=Path(path).suffix.lstrip(".").lower() or "png")
    except ValueError as err:  # a suffix matplotlib cannot write, e.g. .txt
        raise ElmanError(f"--plot-out {path}: {err}; use .png, .pdf or .svg") from None
    finally:
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    check_device(args.device)
    try:
        return translate(
            args.checkpoint, args.input, out=args.out, beam=args.beam,
            length_penalty=args.length_penalty, max_len_ratio=args.max_len_ratio,
            no_repeat_ngram=args.no_repeat_ngram, n_best=args.n_best, ensemble=args.ensemble,
            interactive=args.interactive, batch_size=args.batch_size, device=args.device,
            plot_attention=args.plot_attention, plot_out=args.plot_out,
        )  # fmt: skip
    except BrokenPipeError:  # `elman translate … | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
