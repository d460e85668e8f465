"""``elman ngram build|eval|sample``: n-gram language models as ARPA files.

    elman ngram build --order 5 --smoothing mkn --data ptb --out ptb5.arpa
    elman ngram eval ptb5.arpa --data ptb --split test [--json]
    elman ngram sample ptb5.arpa --sentences 5 --seed 1
    elman ngram binary ptb5.arpa ptb5.bin     # loads in milliseconds; eval and sample take it
    elman ngram prune ptb5.arpa --threshold 1e-7 --out ptb5-pruned.arpa   # SRILM -prune

``--data`` is a dataset name (``elman data list``), a directory with train.txt,
valid.txt and test.txt, or a plain text file (one sentence a line), which is then the
text itself whatever the split.  ``build`` writes its ARPA file atomically: an older
file at ``--out`` stays whole until the new one is complete.  Each command is also a
function: :func:`build`, :func:`evaluate`, :func:`sample`.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from elman.cli.options import SEED, check_output, integer, real
from elman.errors import ElmanError
from elman.files import dumps

if TYPE_CHECKING:  # NumPy is imported only when a command needs it (elman --help stays quick)
    from elman.models.ngram import NgramLM

MAX_ORDER = 20  # as elman.models.ngram.model.MAX_ORDER (imported lazily there: NumPy)
DECIMALS = 8  # as elman.models.ngram.arpa_lines.DECIMALS
DEFAULT_MEMORY = "50%"  # for the build (lmplz: 80% of physical memory)


def load_lines(data: str, split: str) -> list[str]:
    """The lines of ``split`` of dataset ``data``, or of the text file ``data``."""
    from elman.data.datasets import resolve
    from elman.data.text import read_lines

    if Path(data).is_file():
        return read_lines(data)
    ds = resolve(data)
    if ds.tokenizer != "whitespace":
        raise ElmanError(
            f"dataset '{data}' is a character stream without sentence lines; n-gram models "
            "need one sentence a line (try ptb, ptb-char or wikitext-2)"
        )
    return ds.lines(split)


def read_vocab(path: str | Path) -> frozenset[str]:
    """The words of a ``--limit-vocab`` file: separated by any whitespace (spaces, tabs,
    newlines), as KenLM's ``lmplz --limit_vocab_file`` reads them."""
    from elman.data.text import read_text

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ElmanError(f"{path}: file is empty; --limit-vocab needs a file of words")
    try:
        words = frozenset(read_text(path).split())
    except ElmanError as err:
        raise ElmanError(f"--limit-vocab {err}") from None
    if not words:
        raise ElmanError(f"{path}: no words in it; --limit-vocab needs a file of words")
    return words


def build(
    data: str,
    *,
    order: int,
    smoothing: str,
    out: str | Path,
    k: float = 1.0,
    prune: tuple[int, ...] = (),
    limit_vocab: str | Path | None = None,
    binary: bool = False,
    decimals: int | None = DECIMALS,
    memory: int | None = None,
    temp_dir: str | Path | None = None,
):
    """Build an n-gram model on the train split of ``data`` and write it to ``out`` (ARPA, or
    with ``binary`` elman's binary format, as ``elman ngram binary`` writes it), pruned as
    ``prune`` (count thresholds per order) and ``limit_vocab`` (a file of words) say, as KenLM's
    ``lmplz --prune`` and ``--limit_vocab_file``; ARPA values have ``decimals`` digits after
    the point (None: exact, :func:`~elman.models.ngram.write_arpa`).  ``memory`` bytes bound
    the counting, spilled beyond it to ``temp_dir`` (lmplz's ``-S`` and ``-T``; None: no
    bound); the model is written order by order and never held whole
    (:mod:`elman.models.ngram.estimation`).  Returns what was written: sizes and discounts."""
    from elman.data.text import stream_lines
    from elman.models.ngram import NgramConfig
    from elman.models.ngram.estimation import build_file
    from elman.progress import Progress

    words = None if limit_vocab is None else read_vocab(limit_vocab)
    config = NgramConfig(
        order=order, smoothing=smoothing, k=k, prune=tuple(prune), limit_vocab=words
    )
    check_output(out, "--out")  # before the counting, which can take minutes
    # lines, never a bar: this path loads neither torch nor tqdm (tests/cli/test_no_torch.py)
    with Progress(f"building a {order}-gram {smoothing} model", bar=False) as progress:
        progress.phase(f"reading {data}")
        # a file is read a line at a time: a corpus of 100M words is never held as text
        lines = stream_lines(data) if Path(data).is_file() else load_lines(data, "train")
        # atomic: a kill leaves the old file (and a temporary, removed by the next build to
        # the same path)
        return build_file(lines, config, out, binary=binary, decimals=decimals, memory=memory,
                          temp_dir=temp_dir, phase=progress.phase)  # fmt: skip


def evaluate(model: str | Path, data: str, *, split: str = "test") -> dict:
    """Perplexity of the model ``model`` (ARPA or binary) on ``split`` of ``data``, with counts."""
    from elman.models.ngram import read_model

    lm = read_model(model)
    result = lm.perplexity(load_lines(data, split))
    if not result.tokens:
        raise ElmanError(f"{data} {split}: no sentences to score; give a split with text")
    if not math.isfinite(result.perplexity):
        raise ElmanError(
            f"{model} on {data} {split}: perplexity {result.perplexity} is not finite; the model "
            "gives probability 0 (log10 -inf) to a token of the split: rebuild it with smoothing"
        )
    return {"model": str(model), "order": lm.order, "data": data, "split": split, **asdict(result)}


def sample(model: str | Path, *, sentences: int, seed: int, max_words: int = 100) -> list[str]:
    """``sentences`` sentences sampled from the model ``model`` (ARPA or binary) with ``seed``."""
    from elman.models.ngram import read_model

    return read_model(model).sample(sentences, seed=seed, max_words=max_words)


def mix(
    models: list[str],
    out: str | Path,
    *,
    weights: list[float] | None = None,
    tune: str | None = None,
    data: str | None = None,
    split: str = "test",
    binary: bool = False,
    decimals: int | None = DECIMALS,
) -> dict:
    """Merge the ``models`` (ARPA or binary) into one statically interpolated model at ``out``
    (ARPA, or binary with ``binary``), with
    ``weights`` or weights tuned by EM on ``tune`` (its valid split, or a text file); with
    ``data``, also the perplexities on ``split`` of each model, the dynamic mixture and the
    merged model."""
    from elman.models.mixture import tune_weights
    from elman.models.ngram import read_model
    from elman.models.ngram.merge import (
        check_weights,
        component_log10probs,
        dynamic_log10probs,
        merge,
    )

    if len(models) < 2:
        raise ElmanError("elman ngram mix: give at least two ARPA models")
    if (weights is None) == (tune is None):
        raise ElmanError("elman ngram mix: give --lambda or --tune, one of the two")
    check_output(out, "--out")
    lms = [read_model(m) for m in models]
    if tune is not None:
        dev = load_lines(tune, "valid")
        weights = tune_weights([x * LN10 for x in component_log10probs(lms, dev)])
    assert weights is not None
    weights = check_weights(weights, len(lms))
    merged = merge(lms, weights)
    write_model(merged, out, binary, decimals=decimals)
    result: dict = {"models": models, "lambda": weights, "out": str(out), "tuned_on": tune}
    result["counts"] = merged.counts()
    if data is not None:
        lines = load_lines(data, split)
        ppl = {m: lm.perplexity(lines).perplexity for m, lm in zip(models, lms, strict=True)}
        dyn = dynamic_log10probs(lms, weights, lines)
        result |= {"data": data, "split": split, "perplexity": ppl}
        result["dynamic_perplexity"] = float(10.0 ** -dyn.mean())
        result["merged_perplexity"] = merged.perplexity(lines).perplexity
    return result


def prune(
    model: str | Path,
    *,
    threshold: float,
    out: str | Path,
    binary: bool = False,
    decimals: int | None = DECIMALS,
) -> dict:
    """Entropy-based pruning (Stolcke 1998, SRILM's ``ngram -prune``) of the model ``model``
    (ARPA or binary): drop each n-gram whose removal grows the perplexity by a factor of less
    than 1 + ``threshold``, write the result to ``out`` (ARPA, or binary with ``binary``).
    Returns the n-gram counts before and after and the pruning time."""
    from elman.models.ngram import read_model
    from elman.models.ngram.entropy import check_threshold, prune_entropy

    threshold = check_threshold(threshold)
    check_output(out, "--out")
    lm = read_model(model)
    start = time.perf_counter()
    pruned = prune_entropy(lm, threshold)
    seconds = time.perf_counter() - start
    write_model(pruned, out, binary, decimals=decimals)
    return {
        "model": str(model), "threshold": threshold, "out": str(out),
        "counts_before": lm.counts(), "counts": pruned.counts(), "prune_s": seconds,
    }  # fmt: skip


LN10 = math.log(10.0)


def write_model(
    lm: NgramLM,
    out: str | Path,
    binary: bool,
    phase: Callable[[str], None] | None = None,
    decimals: int | None = DECIMALS,
) -> None:
    """``lm`` to ``out``, atomically: elman's binary format with ``binary``, else ARPA text
    with ``decimals`` digits after the point (None: Python's exact shortest form)."""
    from elman.models.ngram import write_arpa, write_binary
    from elman.models.ngram.counts import quiet

    if binary:
        write_binary(lm, out)
    else:
        write_arpa(lm, out, phase or quiet, decimals=decimals)


def memory_size(text: str) -> int:
    """``--memory``: bytes as ``500M``, ``2G``, ``1.5T``, a plain number of bytes, or ``P%``
    of the machine's physical memory (as lmplz's ``-S``)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    clean = text.strip().upper().removesuffix("B")
    try:
        if clean.endswith("%"):
            share = float(clean[:-1]) / 100
            size = share * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            valid = 0 < share <= 1
        else:
            size = float(clean[:-1]) * units[clean[-1]] if clean[-1:] in units else float(clean)
            valid = math.isfinite(size)
    except (ValueError, IndexError):
        valid = False
    if not valid or size < 2**20:
        raise argparse.ArgumentTypeError(
            f"expected a size of at least 1M such as 500M, 2G or 50%, got {text!r}"
        )
    return int(size)


def decimals_option(text: str) -> int | None:
    """``--decimals``: an integer 1 … 17, or ``exact``."""
    if text == "exact":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 17:
        raise argparse.ArgumentTypeError(f"expected an integer 1 … 17 or 'exact', got {text!r}")
    return value


def add_output(parser: argparse.ArgumentParser) -> None:
    """``--out FILE`` and ``--binary``, as every command that writes a model takes them."""
    parser.add_argument("--out", required=True, help="model file to write (replaced when present)")
    parser.add_argument(
        "--binary", action="store_true",
        help="write elman's binary format (as `elman ngram binary`) instead of ARPA text",
    )  # fmt: skip
    parser.add_argument(
        "--decimals", type=decimals_option, default=DECIMALS, metavar="N|exact",
        help=f"digits after the point of each log10 value in ARPA text (default: {DECIMALS}, "
        "each probability to 1.2e-8 relative); 'exact' writes Python's shortest round-trip "
        "form, bit for bit on reading, several times slower",
    )  # fmt: skip


# --- the command line ----------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ngram",
        help="n-gram language models (build, eval, sample, binary, mix, prune)",
        description=__doc__,
    )
    cmds = p.add_subparsers(dest="ngram_command", metavar="{build,eval,sample,binary,mix,prune}")
    p.set_defaults(func=lambda args: p.print_help() or 2)

    b = cmds.add_parser("build", help="count a corpus and write a smoothed ARPA model")
    b.add_argument("--data", required=True, help="dataset name, directory or text file")
    b.add_argument(
        "--order", type=integer(1, MAX_ORDER), default=5, help=f"n-gram order N, 1 … {MAX_ORDER}"
    )
    b.add_argument(
        "--smoothing",
        default="mkn",
        help="ml, addk, abs, kn or mkn (modified Kneser-Ney, as KenLM's lmplz)",
    )
    b.add_argument("--k", type=real(0.0, above=True), default=1.0, help="add-k pseudo-count, > 0")
    b.add_argument(
        "--prune", type=integer(0), nargs="+", default=[], metavar="T",
        help="count pruning as lmplz --prune: drop n-grams of order n with a count <= the n-th "
        "value (non-decreasing, from the unigrams up; the last repeats), e.g. 0 0 1 (kn, mkn; "
        "default: no pruning)",
    )  # fmt: skip
    b.add_argument(
        "--limit-vocab", metavar="FILE",
        help="as lmplz --limit_vocab_file: drop every n-gram with a word not in FILE "
        "(whitespace-separated words; kn, mkn; default: none)",
    )  # fmt: skip
    b.add_argument(
        "--memory", type=memory_size, default=memory_size(DEFAULT_MEMORY), metavar="SIZE",
        help="memory for the build, as lmplz -S: 500M, 2G or a share of RAM such as 50%%; the "
        "counts are sorted in chunks that fit beside what is held, spilled to --temp-dir and "
        "merged, and the model is written order by order (default: "
        f"{DEFAULT_MEMORY.replace('%', '%%')} of physical memory)",
    )  # fmt: skip
    b.add_argument(
        "--temp-dir", metavar="DIR",
        help="folder for the sorted runs, as lmplz -T (default: the system's, $TMPDIR)",
    )  # fmt: skip
    add_output(b)
    b.set_defaults(func=_run_build)

    e = cmds.add_parser("eval", help="perplexity of an ARPA model on a split")
    e.add_argument("model", help="ARPA or binary model file")
    e.add_argument("--data", required=True, help="dataset name, directory or text file")
    e.add_argument("--split", default="test", help="train, valid or test")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_run_eval)

    s = cmds.add_parser("sample", help="sample sentences from an ARPA model")
    s.add_argument("model", help="ARPA or binary model file")
    s.add_argument(
        "--sentences", type=integer(0, MAX_SENTENCES), default=5, help="how many sentences"
    )
    s.add_argument("--seed", type=SEED, default=1, help="random seed")
    s.add_argument(
        "--max-words", type=integer(1, MAX_WORDS), default=100, help="cut sentences at this length"
    )
    s.set_defaults(func=_run_sample)

    c = cmds.add_parser("binary", help="convert an ARPA model to the binary format (fast loading)")
    c.add_argument("model", help="ARPA file (or a binary model, rewritten)")
    c.add_argument("out", help="binary model file to write (replaced when present)")
    c.set_defaults(func=_run_binary)

    m = cmds.add_parser(
        "mix", help="merge ARPA models into one statically interpolated model (SRILM -mix-lm)"
    )
    m.add_argument("models", nargs="+", help="two or more ARPA or binary models")
    how = m.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--lambda", dest="weights", type=real(0.0, 1.0), nargs="+",
        help="one weight per model (summing to 1), or the first model's weight of two "
        "(default: none; give this or --tune)",
    )  # fmt: skip
    how.add_argument(
        "--tune", metavar="DATA",
        help="tune the weights by EM on this dataset's valid split or this text file "
        "(default: none)",
    )  # fmt: skip
    add_output(m)
    m.add_argument(
        "--data", help="also report perplexities on this dataset or text file (default: none)"
    )
    m.add_argument("--split", default="test", help="the split of --data (default: test)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=_run_mix)

    r = cmds.add_parser(
        "prune", help="entropy-based pruning of an ARPA or binary model (SRILM -prune)"
    )
    r.add_argument("model", help="ARPA or binary model file")
    r.add_argument(
        "--threshold", type=real(0.0), required=True,
        help="drop an n-gram when removing it grows the perplexity by a relative amount below "
        "this (SRILM -prune; e.g. 1e-8 … 1e-6; 0 prunes nothing)",
    )  # fmt: skip
    add_output(r)
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=_run_prune)


# Bounds that keep a typo from running for hours: a million sentences of up to 10,000 words.
MAX_SENTENCES = 1_000_000
MAX_WORDS = 10_000


def _run_build(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    lm = build(
        args.data, order=args.order, smoothing=args.smoothing, out=args.out, k=args.k,
        prune=tuple(args.prune), limit_vocab=args.limit_vocab, binary=args.binary,
        decimals=args.decimals, memory=args.memory, temp_dir=args.temp_dir,
    )  # fmt: skip
    print(f"{args.order}-gram {args.smoothing} model of {args.data}: {lm.vocab_size} words")
    for n, (count, d) in enumerate(zip(lm.counts, lm.discounts, strict=True), start=1):
        shown = " ".join(f"D{i}={x:.4f}" for i, x in enumerate(d, start=1))
        print(f"  {n}-grams {count:>9}  {shown}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    r = evaluate(args.model, args.data, split=args.split)
    if args.json:
        print(dumps(r))
        return 0
    share = 100.0 * r["oovs"] / max(r["words"], 1)
    print(f"model       {r['model']} ({r['order']}-gram)")
    print(
        f"data        {r['data']} {r['split']}: {r['sentences']} sentences, {r['words']} words, "
        f"{r['tokens']} tokens (words + </s>)"
    )
    print(f"OOVs        {r['oovs']} ({share:.2f}% of words)")
    print(f"perplexity  {r['perplexity']:.2f} ({r['perplexity_no_oov']:.2f} without OOVs)")
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    for line in sample(
        args.model, sentences=args.sentences, seed=args.seed, max_words=args.max_words
    ):
        print(line)
    return 0


def _run_binary(args: argparse.Namespace) -> int:
    """KenLM's build_binary for elman: read the model, write it in the binary format."""
    from elman.models.ngram import read_model, write_binary

    check_output(args.out, "OUT")  # before reading, which takes seconds
    start = time.perf_counter()
    lm = read_model(args.model)
    read_s = time.perf_counter() - start
    size = write_binary(lm, args.out)
    write_s = time.perf_counter() - start - read_s
    mb = Path(args.model).stat().st_size / 2**20
    shown = f"{mb:.1f} MB, {lm.order}-gram, {lm.vocab_size} words"
    print(f"read   {args.model} ({shown}) in {read_s:.2f} s")
    print(f"wrote  {args.out} ({size / 2**20:.1f} MB) in {write_s:.2f} s")
    return 0


def _run_mix(args: argparse.Namespace) -> int:
    r = mix(
        args.models, args.out, weights=args.weights, tune=args.tune, data=args.data,
        split=args.split, binary=args.binary, decimals=args.decimals,
    )  # fmt: skip
    if args.json:
        print(dumps(r))
        return 0
    shown = " ".join(f"{w:.4f}" for w in r["lambda"])
    tuned = f" (tuned on {r['tuned_on']})" if r["tuned_on"] else ""
    print(f"lambda      {shown}{tuned}")
    print(
        f"wrote       {r['out']}: "
        + ", ".join(f"{c} {n}-grams" for n, c in enumerate(r["counts"], start=1))
    )
    if "perplexity" in r:
        for model, ppl in r["perplexity"].items():
            print(f"perplexity  {ppl:.2f}  {model} on {r['data']} {r['split']}")
        print(f"perplexity  {r['dynamic_perplexity']:.2f}  dynamic mixture")
        print(f"perplexity  {r['merged_perplexity']:.2f}  merged model ({r['out']})")
    return 0


def _run_prune(args: argparse.Namespace) -> int:
    r = prune(
        args.model, threshold=args.threshold, out=args.out, binary=args.binary,
        decimals=args.decimals,
    )  # fmt: skip
    if args.json:
        print(dumps(r))
        return 0
    print(f"pruned      {r['model']} with threshold {r['threshold']:g} in {r['prune_s']:.1f} s")
    for n, (before, after) in enumerate(zip(r["counts_before"], r["counts"], strict=True), 1):
        print(f"  {n}-grams {before:>9} -> {after:>9}")
    print(f"wrote       {r['out']}: {sum(r['counts'])} n-grams of {sum(r['counts_before'])}")
    return 0
