"""``elman eval CHECKPOINT --data NAME --split valid|test [--json]``: perplexity (or bpc).

For a tagger: token accuracy, overall and on unseen words; ``--report`` adds per-tag
precision/recall/F1 and the confusion table. For a translation model: sacreBLEU BLEU and chrF of
the detokenized outputs against the raw references, with sacreBLEU's signatures (splits by name,
e.g. ``--data multi30k --split test_2016_flickr``).

With ``--mix MODEL.arpa`` the neural model is also interpolated token by token with an n-gram
model, P = λ·P_neural + (1−λ)·P_ngram, λ tuned on the validation split (``--lambda auto``) or given.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a split", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument("--data", help="dataset name or folder (default: the one it was trained on)")
    p.add_argument("--split", default="test", help="train, valid or test (default test)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="evaluation columns (default: recipe)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--report", action="store_true", help="taggers: per-tag P/R/F1 and the confusion table"
    )
    p.add_argument(
        "--ensemble",
        nargs="+",
        metavar="CKPT",
        default=(),
        help="taggers: average the tag distributions of these models with CHECKPOINT's",
    )
    p.add_argument("--mix", metavar="ARPA", help="interpolate with this n-gram model (ARPA file)")
    p.add_argument(
        "--lambda",
        dest="lam",
        default="auto",
        help="weight of the neural model in the mixture: auto (tuned on valid) or a number",
    )
    p.add_argument(
        "--results",
        metavar="JSON",
        help="write a results file (valid and test, with the command) for the README table",
    )
    p.add_argument("--aim", default="", help="with --results: the published number aimed at")
    p.set_defaults(func=run)


def evaluate_checkpoint(
    checkpoint: str,
    data: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
    mix: str | None = None,
    lam: str | float = "auto",
    report: bool = False,
    ensemble: Sequence[str] = (),
) -> dict:
    """Load a checkpoint and score one split; the returned dict holds ppl/bpc, tokens, seconds."""
    from elman.data.datasets import resolve
    from elman.errors import ElmanError
    from elman.train.checkpoint import load_checkpoint
    from elman.train.recipe import task_table
    from elman.train.trainer import pick_device

    if batch_size is not None and batch_size < 1:
        raise ElmanError(f"--batch-size must be >= 1, got {batch_size}")
    dev = pick_device(device)
    payload = load_checkpoint(checkpoint, map_location=dev)
    task = task_table()[payload["task"]]
    loaded = task.load(payload, dev)
    recipe = loaded["recipe"]
    if hasattr(task, "resolve_dataset"):  # e.g. a tagger: CoNLL-U files, its tag column
        dataset = task.resolve_dataset(data or recipe.data.dataset, recipe)
    else:
        dataset = resolve(data or recipe.data.dataset)
    bs = batch_size or recipe.data.eval_batch_size
    extra = {}
    if ensemble:
        if not hasattr(task, "load_ensemble"):
            raise ElmanError(f"--ensemble: applies to taggers, not to {payload['task']!r} models")
        extra["ensemble"] = task.load_ensemble(ensemble, loaded["vocab"], dev)
    metrics = task.evaluate(
        loaded["model"], loaded["vocab"], dataset, split, bs, dev, recipe.data.bptt, **extra
    )
    result = {"checkpoint": payload["path"], "data": dataset.name, "split": split, **metrics}
    if report:
        if not hasattr(task, "report"):
            raise ElmanError(f"--report: applies to taggers, not to {payload['task']!r} models")
        result["report"] = task.report(
            loaded["model"], loaded["vocab"], dataset, split, bs, dev, **extra
        )
    if mix is not None:
        if not hasattr(task, "split_logprobs"):
            raise ElmanError(f"--mix: {payload['task']!r} models cannot be mixed with an n-gram")

        def scores(s: str) -> dict:
            return task.split_logprobs(
                loaded["model"], loaded["vocab"], dataset, s, bs, dev, recipe.data.bptt
            )

        result["mix"] = mix_with_ngram(scores, dataset, split, mix, lam)
    return result


def mix_with_ngram(scores, dataset, split: str, arpa: str, lam: str | float) -> dict:
    """Per-token interpolation of the neural scores with an ARPA model; λ tuned on valid."""
    from elman.errors import ElmanError
    from elman.models.mixture import mix_logprobs, perplexity, tune_lambda
    from elman.models.ngram import read_arpa

    ngram = read_arpa(arpa)

    def both(s: str):
        neural = scores(s)
        ng = ngram.logprobs(dataset.lines(s))
        if len(neural) != len(ng):
            raise ElmanError(
                f"--mix: the neural model scored {len(neural)} tokens of {dataset.name}/{s} and "
                f"{arpa} {len(ng)}; they must share the token convention (every token, </s> "
                "included); mixing a character model with a word n-gram is not possible"
            )
        return neural, ng

    if lam == "auto":
        value = tune_lambda(*both("valid"))
        tuned_on = "valid"
    else:
        try:
            value = float(lam)
        except ValueError:
            raise ElmanError(f"--lambda {lam!r}: give auto or a number in [0, 1]") from None
        if not 0.0 <= value <= 1.0:
            raise ElmanError(f"--lambda {lam}: must be in [0, 1]")
        tuned_on = None
    neural, ng = both(split)
    return {
        "arpa": str(arpa),
        "lambda": value,
        "tuned_on": tuned_on,
        "neural_ppl": perplexity(neural),
        "ngram_ppl": perplexity(ng),
        "ppl": perplexity(mix_logprobs(neural, ng, value)),
    }


def write_results(args: argparse.Namespace, path: str) -> None:
    """Score valid and test and write a results file like ``elman train --results`` does."""
    import datetime
    import shlex
    import sys
    import time
    from pathlib import Path

    import torch

    from elman.train.run import device_description, git_commit
    from elman.train.trainer import pick_device

    start = time.perf_counter()
    metrics = {}
    for split in ("valid", "test"):
        r = evaluate_checkpoint(
            args.checkpoint, args.data, split, args.batch_size, args.device, args.mix, args.lam,
            ensemble=args.ensemble,
        )  # fmt: skip
        metrics[split] = {**r.pop("mix"), "tokens": r["tokens"]} if "mix" in r else r
    ckpt = Path(args.checkpoint)
    name = ckpt.name if ckpt.is_dir() else ckpt.parent.name
    if args.mix:
        name += "+" + Path(args.mix).stem
    if args.ensemble:
        name += f"-ensemble{1 + len(args.ensemble)}"
    record = {
        "recipe": name,
        "aim": args.aim,
        "task": "eval --mix" if args.mix else "eval",
        "dataset": r["data"],
        "metrics": metrics,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "device": device_description(pick_device(args.device)),
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "elman " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    if args.results:
        write_results(args, args.results)
    result = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.batch_size, args.device, args.mix, args.lam,
        args.report, args.ensemble,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result))
    elif "bleu" in result:  # a translation model
        from elman.train.translation import summary_line

        print(f"{result['data']}/{result['split']}: {summary_line(result)}")
        print(f"sacreBLEU {result['bleu_signature']}\nsacreBLEU {result['chrf_signature']}")
    elif "accuracy" in result:  # a tagger
        from elman.train.tagger import summary_line
        from elman.train.tagging_metrics import format_report

        print(f"{result['data']}/{result['split']}: {summary_line(result)}")
        if "report" in result:
            print(format_report(result["report"]))
    else:
        line = f"{result['data']}/{result['split']}: ppl {result['ppl']:.2f}"
        if "bpc" in result:
            line += f", bpc {result['bpc']:.4f}"
        print(line + f", {result['tokens']} tokens, {result['seconds']:.1f} s")
        if "mix" in result:
            m = result["mix"]
            how = f"tuned on {m['tuned_on']}" if m["tuned_on"] else "given"
            print(
                f"mixed with {m['arpa']} (ppl {m['ngram_ppl']:.2f}), lambda {m['lambda']:.3f} "
                f"({how}): ppl {m['ppl']:.2f}"
            )
    return 0
