"""``elman eval CHECKPOINT --data NAME --split valid|test [--json]``: perplexity (or bpc).

For a tagger: token accuracy, overall and on unseen words; ``--report`` adds per-tag
precision/recall/F1 and the confusion table. For a translation model: sacreBLEU BLEU and chrF of
the detokenized outputs against the raw references, with sacreBLEU's signatures (splits by name,
e.g. ``--data multi30k --split test_2016_flickr``).

With ``--mix MODEL.arpa`` the neural model is also interpolated token by token with an n-gram
model, P = λ·P_neural + (1−λ)·P_ngram, λ tuned on the validation split (``--lambda auto``) or given.
The Python function is :func:`elman.evaluate`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from elman.cli.options import (
    add_device,
    add_dynamic,
    add_threads,
    check_device,
    check_output,
    integer,
    use_threads,
)
from elman.inference.limits import MAX_BATCH

if TYPE_CHECKING:
    from elman.inference.dynamic import DynamicSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a split", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument(
        "--data", help="dataset name or folder (default: the one the model was trained on)"
    )
    p.add_argument("--split", default="test", help="train, valid or test")
    p.add_argument(
        "--batch-size",
        type=integer(1, MAX_BATCH),
        default=None,
        help="evaluation batch (default: the recipe's)",
    )
    add_device(p)
    add_threads(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--report", action="store_true", help="taggers: per-tag P/R/F1 and the confusion table"
    )
    p.add_argument(
        "--ensemble",
        nargs="+",
        metavar="CKPT",
        default=(),
        help="taggers: average the tag distributions of these models with CHECKPOINT's "
        "(default: none)",
    )
    p.add_argument(
        "--mix", metavar="ARPA", help="interpolate with this n-gram model (default: none)"
    )
    p.add_argument(
        "--lambda",
        dest="lam",
        default="auto",
        help="weight of the neural model in the mixture: auto (tuned on valid) or a number "
        "in [0, 1]",
    )
    p.add_argument(
        "--cache", type=integer(1, 100_000), metavar="N",
        help="language models: interpolate with a neural cache of the last N hidden states "
        "(Grave et al. 2017); with --dynamic, of the adapted model's states (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--cache-theta",
        default="auto",
        help="the cache's flatness θ: auto (tuned on valid) or a number (default: auto)",
    )
    p.add_argument(
        "--cache-lambda", default="auto",
        help="the cache's weight λ: auto (tuned on valid) or a number in [0, 1) "
        "(default: auto)",
    )  # fmt: skip
    add_dynamic(p, "language models", "segment", "the training split")
    p.add_argument(
        "--dynamic-segment", type=integer(1), metavar="N",
        help="with --dynamic: tokens per step (default: the recipe's data.bptt)",
    )  # fmt: skip
    p.add_argument(
        "--results",
        metavar="JSON",
        help="write a results file (valid and test, with the command) for the README table "
        "(default: none)",
    )
    p.add_argument(
        "--aim", default="", help="with --results: the published number aimed at (default: none)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from elman.files import dumps, write_json
    from elman.tasks.evaluation import Evaluation, evaluate, parse_cache_value, parse_lambda
    from elman.tasks.results import evaluation_record
    from elman.tasks.tagging_metrics import format_report

    parse_lambda(args.lam)  # a bad --lambda stops before anything is loaded
    parse_cache_value(args.cache_theta, "--cache-theta", None)
    parse_cache_value(args.cache_lambda, "--cache-lambda", 1.0)
    if args.results:
        check_output(args.results, "--results")  # before the evaluation, not after it
    use_threads(args.threads)
    check_device(args.device)
    evaluations: dict[str, Evaluation] = {}
    if args.results:
        record = evaluation_record(
            args.checkpoint, data=args.data, batch_size=args.batch_size, device=args.device,
            ensemble=args.ensemble, mix=args.mix, lam=args.lam, cache=args.cache,
            cache_theta=args.cache_theta, cache_lambda=args.cache_lambda,
            dynamic=dynamic_settings(args), aim=args.aim, evaluations=evaluations,
        )  # fmt: skip
        write_json(args.results, record)
    result = evaluations.get(args.split) if not args.report else None
    if result is None:
        result = evaluate(
            args.checkpoint, args.split, data=args.data, batch_size=args.batch_size,
            device=args.device, ensemble=args.ensemble, report=args.report, mix=args.mix,
            lam=args.lam, cache=args.cache, cache_theta=args.cache_theta,
            cache_lambda=args.cache_lambda, dynamic=dynamic_settings(args),
        )  # fmt: skip
    if args.json:
        print(dumps(result.to_dict()))
        return 0
    print(result.summary())
    if result.report is not None:
        print(format_report(result.report))
    return 0


def dynamic_settings(args: argparse.Namespace) -> DynamicSettings | None:
    """The --dynamic options as one value (None without --dynamic)."""
    from elman.inference.dynamic import DynamicSettings

    if args.dynamic is None:
        return None
    return DynamicSettings(
        args.dynamic, args.dynamic_decay, rule=args.dynamic_rule, segment=args.dynamic_segment,
        stats_tokens=args.dynamic_stats_tokens,
    )  # fmt: skip
