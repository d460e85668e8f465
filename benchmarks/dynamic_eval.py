"""A language model with and without dynamic evaluation (Krause et al. 2018), on one corpus.

    ELMAN_DATA=/path/to/corpora python benchmarks/dynamic_eval.py runs/ptb-small-lstm \
        --lrs 0.03 0.1 0.3 1 [--decay 0] [--rule sgd|rms] [--segment N] [--stats-tokens N] \
        [--jobs N] --out benchmarks/results/dynamic_eval.json [--results results/NAME+dynamic.json]

The learning rate is chosen on the valid split (the lowest perplexity of ``--lrs``, decay
``--decay``, update ``--rule``, ``--segment`` tokens per step), then the test perplexity is
measured with it, beside the static one read the same way (batch 1, the same segments).
``--results`` also writes the results record of ``elman eval --dynamic`` at the chosen rate
(the README table's row). Written with the commit, so run it from a clean tree.
``--jobs N`` tries N rates at once, each in its own process on one thread (a WikiText-2 pass
of a 28M-weight model takes tens of minutes): the main process scores valid without adapting
once and hands those scores to every worker, and each rate's valid scores come back to it, so
neither pass is repeated.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any


def try_rate(loaded: Any, scores: Any, settings: Any) -> dict[str, Any]:
    """One rate on valid: its result as the record lists it, or why it diverged."""
    from elman.errors import ElmanError
    from elman.tasks.evaluation import evaluate

    start = time.perf_counter()
    try:
        r = evaluate(loaded, "valid", dynamic=settings, scores=scores).dynamic
    except ElmanError as err:  # the adapted weights diverged at this rate
        return {"lr": settings.lr, "split": "valid", "diverged": str(err)}
    assert r is not None
    return {**r.to_dict(), "split": "valid", "seconds": time.perf_counter() - start}


def rate_in_process(run: str, settings: Any, static: Any) -> tuple[dict[str, Any], Any]:
    """:func:`try_rate` in a worker process, given the static valid scores (ln p(y_t) as
    trained, ``static``); with the adapted valid scores it computed, or None if it diverged."""
    import torch

    from elman.tasks.evaluation import Scores
    from elman.tasks.loading import load

    torch.set_num_threads(1)
    loaded = load(run, "cpu")
    scores = Scores(loaded, loaded.dataset())
    scores.adopt("valid", dataclasses.replace(settings, lr=0.0), static)
    tried = try_rate(loaded, scores, settings)
    return tried, None if "diverged" in tried else scores.dynamic("valid", settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a language model's run folder or checkpoint")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--decay", type=float, default=0.0)
    parser.add_argument("--rule", choices=("sgd", "rms"), default="sgd")
    parser.add_argument("--segment", type=int, help="tokens per step (the recipe's bptt)")
    parser.add_argument("--stats-tokens", type=int, default=100_000, help="rms: training tokens")
    parser.add_argument("--jobs", type=int, default=1, help="rates tried at once, one process each")
    parser.add_argument("--out", required=True)
    parser.add_argument("--results", help="also write elman eval's results record")
    args = parser.parse_args()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from elman.files import write_json
    from elman.inference.dynamic import DynamicSettings
    from elman.provenance import command_line, provenance
    from elman.tasks.evaluation import Scores, evaluate
    from elman.tasks.loading import load
    from elman.tasks.results import evaluation_record

    def settings(lr: float) -> DynamicSettings:
        return DynamicSettings(
            lr, args.decay, rule=args.rule, segment=args.segment, stats_tokens=args.stats_tokens
        )

    def show(t: dict[str, Any]) -> None:
        done = "diverged" if "diverged" in t else f"{t['static_ppl']:.2f} -> {t['ppl']:.2f}"
        print(f"valid lr {t['lr']:g}: {done}", flush=True)

    torch.set_num_threads(1)
    began = time.perf_counter()
    loaded = load(args.run, "cpu")
    scores = Scores(loaded, loaded.dataset())  # the static scores and the chosen rate's, once
    tried = []
    if args.jobs > 1:
        static = scores.dynamic("valid", settings(0.0))  # what every rate compares with
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, one thread each
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [
                (lr, pool.submit(rate_in_process, args.run, settings(lr), static))
                for lr in args.lrs
            ]
            for lr, future in futures:
                t, adapted = future.result()
                if adapted is not None:
                    scores.adopt("valid", settings(lr), adapted)
                tried.append(t)
                show(t)
    else:
        for lr in args.lrs:
            tried.append(try_rate(loaded, scores, settings(lr)))
            show(tried[-1])
    finite = [t for t in tried if "ppl" in t]
    if not finite:
        raise SystemExit("every rate diverged on valid; try smaller --lrs")
    best = min(finite, key=lambda t: t["ppl"])
    start = time.perf_counter()
    test = evaluate(loaded, "test", dynamic=settings(best["lr"]), scores=scores).dynamic
    assert test is not None
    test_seconds = time.perf_counter() - start
    print(f"test lr {best['lr']:g} (chosen on valid): {test.static_ppl:.2f} -> {test.ppl:.2f}")
    record = {
        "benchmark": "dynamic_eval",
        "run": args.run,
        "valid": tried,
        "test": {**test.to_dict(), "seconds": test_seconds},
        **provenance(
            device=torch.device("cpu"),
            command=command_line(prog="python benchmarks/dynamic_eval.py"),
        ),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    if args.results:
        chosen = settings(best["lr"])
        command = (
            f"elman eval {args.run} --dynamic {chosen.lr:g} --dynamic-decay {chosen.decay:g} "
            f"--dynamic-rule {chosen.rule}"
            + (f" --dynamic-segment {chosen.segment}" if chosen.segment else "")
            + (f" --dynamic-stats-tokens {chosen.stats_tokens}" if chosen.rule == "rms" else "")
            + f" --results {args.results}"
        )
        aim = f"dynamic evaluation, η chosen on valid among {args.lrs}"
        record = evaluation_record(
            args.run, device="cpu", dynamic=chosen, aim=aim, command=command, scores=scores
        )
        # the record reuses the passes above: its time is the whole search's, the grid included
        record["wall_time_s"] = round(time.perf_counter() - began, 1)
        at_once = f" ({args.jobs} at once)" if args.jobs > 1 else ""
        record["wall_time_covers"] = f"every rate on valid{at_once}, the chosen one on test"
        write_json(args.results, record)
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
