"""``elman translate CHECKPOINT [INPUT] [--beam K] [--out FILE] [--plot-attention N …]``.

Translates raw text, one sentence a line (standard input by default), into one plain-text
translation a line, in order. An empty line gives an empty line; a character never seen in
training is the unknown piece; a line longer than the recipe's ``[decode] max_source_len``
pieces (250 by default) is cut to that many, with a warning on stderr. Decoding follows the
recipe's ``[decode]`` section unless ``--beam``, ``--length-penalty`` or ``--max-len-ratio`` say
otherwise (``--beam 1`` is greedy search).

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
from elman.inference.limits import MAX_BATCH, MAX_BEAM, MAX_LEN_RATIO, MAX_LENGTH_PENALTY


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


def decode_settings(recipe_decode, beam, length_penalty, max_len_ratio):
    """The recipe's [decode] section with the command line's changes, checked."""
    from elman.errors import ElmanError

    changes = {"beam": beam, "length_penalty": length_penalty, "max_len_ratio": max_len_ratio}
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
    batch_size: int = 64,
    device: str = "auto",
    plot_attention: int | None = None,
    plot_out: str | Path | None = None,
) -> int:
    """Translate ``input`` (a file, or ``-`` for stdin) into ``out`` (a file, or stdout)."""
    from elman.data.text import decode_utf8, read_bytes
    from elman.errors import ElmanError
    from elman.files import atomic_open
    from elman.tasks.loading import load

    if not 1 <= batch_size <= MAX_BATCH:
        raise ElmanError(f"--batch-size must be in 1 … {MAX_BATCH}, got {batch_size}")
    if (plot_attention is None) != (plot_out is None):
        raise ElmanError("--plot-attention N and --plot-out FILE.png go together; give both")
    # Outputs are checked before the model is loaded and hours of decoding start.
    if out:
        check_output(out, "--out")
    if plot_out is not None:
        check_output(plot_out, "--plot-out")
    loaded = load(checkpoint, device, need="translate", command="`elman translate`")
    model, vocab, dev = loaded.model, loaded.vocab, loaded.device
    decode = decode_settings(loaded.recipe.decode, beam, length_penalty, max_len_ratio)
    if plot_attention is not None and model.kind != "attention":
        raise ElmanError(
            f"--plot-attention: {loaded.path} is a {model.kind!r} model, which has no "
            "attention; use a checkpoint of kind = 'attention'"
        )
    if str(input) == "-":
        name, data = "<stdin>", sys.stdin.buffer.read()
    elif Path(input).is_file() and Path(input).stat().st_size == 0:
        name, data = str(input), b""  # nothing to translate is not an error
    else:
        name, data = str(input), read_bytes(input)
    lines = decode_utf8(data, name).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line opens no new one
    if plot_attention is not None and not 1 <= plot_attention <= len(lines):
        raise ElmanError(f"--plot-attention {plot_attention}: the input has {len(lines)} lines")
    outputs = loaded.translate(lines, decode=decode, batch_size=batch_size)
    if out:
        with atomic_open(out) as sink:  # a run stopped halfway leaves the old file as it was
            sink.writelines(line + "\n" for line in outputs)
    else:
        sys.stdout.writelines(line + "\n" for line in outputs)
    if plot_attention is not None:
        plot_line(model, vocab, lines[plot_attention - 1], decode, dev, plot_out)
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
            batch_size=args.batch_size, device=args.device,
            plot_attention=args.plot_attention, plot_out=args.plot_out,
        )  # fmt: skip
    except BrokenPipeError:  # `elman translate … | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
