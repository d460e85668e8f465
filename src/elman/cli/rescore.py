"""``elman rescore NBEST [--lm MODEL …] [--weights FILE | --tune DEV --refs REFS --metric
bleu|wer]``: re-rank n-best lists with language models and a length term.

NBEST is a Moses-style list (``id ||| hypothesis ||| name=value … ||| total``, what
``elman translate --n-best K`` and Moses write), or with ``--format kaldi`` a Kaldi text file of
``UTTERANCE-N words`` lines with ``--scores am=FILE lm=FILE`` (``UTTERANCE-N value`` lines;
``--costs`` when they hold Kaldi's costs, −log p). Each ``--lm MODEL`` (an ARPA file, an LM or
NPLM checkpoint, as ``elman score`` reads them) adds the feature lm0, lm1 …: the natural log of
the hypothesis' probability, scored as one sentence; ``length`` is its number of words.

The new score is the weighted sum of the features. The weights come from ``--weights FILE``
(a JSON file ``--save-weights`` wrote) and ``--weight NAME=VALUE``, or are tuned on a dev
n-best list: ``--tune DEV_NBEST --refs DEV_REFS --metric bleu`` (sacreBLEU) or ``wer`` (jiwer)
by coordinate ascent over the grid −2 … 2 (step 0.05), starting from the list's own score
(docs/translation.md). Without either, the list's own ranking is kept.

Output: the re-ranked 1-best, one line per id in the order the ids first appear (Kaldi: one
``UTTERANCE words`` line each), to ``--out`` or standard output; ``--nbest-out FILE`` writes
every hypothesis, best first, in the Moses format with the added features and the new score
as the total. Files are written whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

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
    p = sub.add_parser(
        "rescore", help="re-rank n-best lists with LMs; tune the weights", description=__doc__
    )
    p.add_argument("nbest", metavar="NBEST", help="the n-best list (Moses) or Kaldi text file")
    p.add_argument("--format", choices=("moses", "kaldi"), default="moses", help="NBEST's format")
    p.add_argument(
        "--scores",
        nargs="+",
        metavar="NAME=FILE",
        default=[],
        help="Kaldi: a score file per feature (default: none)",
    )
    p.add_argument("--costs", action="store_true", help="Kaldi: the score files hold −log p")
    p.add_argument(
        "--lm",
        action="append",
        metavar="MODEL",
        default=[],
        help="a language model whose log P is a feature (lm0, lm1 …; repeatable) (default: none)",
    )
    p.add_argument(
        "--weights", metavar="JSON", help="weights saved by --save-weights (default: none)"
    )
    p.add_argument(
        "--weight",
        action="append",
        metavar="NAME=VALUE",
        default=[],
        help="a feature's weight (repeatable; over --weights) (default: none)",
    )
    p.add_argument(
        "--tune", metavar="DEV_NBEST", help="tune the weights on this n-best list (default: none)"
    )
    p.add_argument(
        "--refs", metavar="DEV_REFS", help="the references of --tune's sentences (default: none)"
    )
    p.add_argument(
        "--tune-scores",
        nargs="+",
        metavar="NAME=FILE",
        default=[],
        help="Kaldi: --tune's score files (default: none)",
    )
    p.add_argument(
        "--metric", choices=("bleu", "wer"), default="bleu", help="what --tune optimises"
    )
    p.add_argument("--save-weights", metavar="JSON", help="write the tuned weights (default: none)")
    p.add_argument("--out", help="the 1-best output (default: standard output)")
    p.add_argument("--nbest-out", metavar="FILE", help="the re-scored n-best list (default: none)")
    p.add_argument(
        "--batch-size",
        type=integer(1, MAX_BATCH),
        default=64,
        help="neural LMs: sentences per batch",
    )
    add_device(p)
    add_threads(p)
    p.set_defaults(func=run)


def named_files(pairs: list[str], option: str) -> dict[str, str]:
    """``["am=FILE", …]`` -> {"am": "FILE"}; a pair without a name or file is one line."""
    from elman.errors import ElmanError

    out: dict[str, str] = {}
    for pair in pairs:
        name, eq, path = pair.partition("=")
        if not (name and eq and path) or name in out:
            raise ElmanError(f"{option} {pair!r}: expected NAME=FILE, each name once")
        out[name] = path
    return out


def named_weights(pairs: list[str]) -> dict[str, float]:
    """``["lm0=0.5", …]`` -> {"lm0": 0.5}, checked."""
    import math

    from elman.errors import ElmanError

    out: dict[str, float] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not name or not math.isfinite(number):
            raise ElmanError(f"--weight {pair!r}: expected NAME=VALUE with a finite number")
        out[name] = number
    return out


def check_arguments(args: argparse.Namespace) -> None:
    """Everything that can be refused before any file is read, in one line."""
    from elman.errors import ElmanError

    if bool(args.tune) != bool(args.refs):
        raise ElmanError("--tune DEV_NBEST and --refs DEV_REFS go together; give both")
    if args.tune and (args.weights or args.weight):
        raise ElmanError("--tune finds the weights that --weights/--weight give; give one of them")
    if args.save_weights and not args.tune:
        raise ElmanError("--save-weights saves what --tune finds; give --tune and --refs")
    kaldi = args.format == "kaldi"
    if kaldi and not args.scores:
        raise ElmanError("--format kaldi needs --scores NAME=FILE … (the hypotheses' scores)")
    if kaldi and args.tune and not args.tune_scores:
        raise ElmanError("--format kaldi with --tune needs --tune-scores NAME=FILE …")
    if not kaldi and (args.scores or args.tune_scores or args.costs):
        raise ElmanError("--scores, --tune-scores and --costs are for --format kaldi")
    named_files(args.scores, "--scores")
    named_files(args.tune_scores, "--tune-scores")
    named_weights(args.weight)
    for option in ("out", "nbest_out", "save_weights"):
        if getattr(args, option):
            check_output(getattr(args, option), "--" + option.replace("_", "-"))


def read_nbest(path: str, fmt: str, scores: list[str], costs: bool) -> Any:
    from elman.data.nbest import read_kaldi, read_moses

    if fmt == "kaldi":
        return read_kaldi(path, named_files(scores, "--scores"), costs=costs)
    return read_moses(path)


def rescore(args: argparse.Namespace) -> int:
    """The command (module docstring)."""
    from elman.data.nbest import read_references
    from elman.tasks.rescoring import (
        feature_table,
        load_weights,
        rerank,
        save_weights,
        start_weights,
        tune,
        weight_vector,
    )
    from elman.tasks.scoring import load_scorer

    check_arguments(args)
    nbest = read_nbest(args.nbest, args.format, args.scores, args.costs)
    scorers = [load_scorer(m, args.device, batch_size=args.batch_size) for m in args.lm]
    features = feature_table(nbest, scorers)
    if args.tune:
        dev = read_nbest(args.tune, args.format, args.tune_scores, args.costs)
        refs = read_references(args.refs, dev)
        tuned = tune(feature_table(dev, scorers), refs, args.metric)
        print(f"elman: {tuned.summary()}", file=sys.stderr)
        if args.save_weights:
            save_weights(args.save_weights, tuned)
        weights = tuned.weights
    else:
        weights = load_weights(args.weights) if args.weights else start_weights(features)
        weights = {**weights, **named_weights(args.weight)}
    w = weight_vector(features, weights)  # (F,)
    best = features.texts(rerank(features, w))
    if args.format == "kaldi":
        best = [f"{utt} {text}".rstrip() for utt, text in zip(nbest.ids, best, strict=True)]
    write_lines(args.out, best)
    if args.nbest_out:
        write_lines(args.nbest_out, moses_lines(features, w))
    return 0


def moses_lines(features: Any, w: Any) -> list[str]:
    """Every hypothesis, best first per id, as ``id ||| text ||| features ||| new score``
    (``w``: the weight of each of ``features.names``)."""
    import numpy as np

    from elman.data.nbest import TOTAL
    from elman.tasks.rescoring import order

    names = [n for n in features.names if n != TOTAL]  # the total is the new score
    at = [features.names.index(n) for n in names]
    lines = []
    for i, (utt, ranked) in enumerate(zip(features.nbest.ids, order(features, w), strict=True)):
        hyps = features.nbest.lists[utt]
        for k in ranked:
            row = features.values[i, k]
            shown = " ".join(f"{n}={row[j]:.10g}" for n, j in zip(names, at, strict=True))
            total = float(np.dot(row, w))
            lines.append(f"{utt} ||| {hyps[k].text} ||| {shown} ||| {total:.10g}")
    return lines


def write_lines(path: str | None, lines: list[str]) -> None:
    from elman.files import atomic_open

    if path:
        with atomic_open(path) as sink:
            sink.writelines(line + "\n" for line in lines)
    else:
        sys.stdout.writelines(line + "\n" for line in lines)
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    check_device(args.device)
    try:
        return rescore(args)
    except BrokenPipeError:  # `elman rescore … | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
