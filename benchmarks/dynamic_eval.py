"""A language model with and without dynamic evaluation (Krause et al. 2018), on one corpus.

    ELMAN_DATA=/path/to/corpora python benchmarks/dynamic_eval.py runs/ptb-small-lstm \
        --lrs 0.03 0.1 0.3 1 --out benchmarks/results/dynamic_eval.json

The learning rate is chosen on the valid split (the lowest perplexity of ``--lrs``, decay
``--decay``), then the test perplexity is measured with it, beside the static one read the same
way (batch 1, the recipe's segments). Written with the commit, so run it from a clean tree.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a language model's run folder or checkpoint")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--decay", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    from elman.files import write_json
    from elman.provenance import command_line, provenance
    from elman.tasks.evaluation import evaluate
    from elman.tasks.loading import load

    torch.set_num_threads(1)
    loaded = load(args.run, "cpu")
    tried = []
    for lr in args.lrs:
        start = time.perf_counter()
        r = evaluate(loaded, "valid", dynamic=lr, dynamic_decay=args.decay).dynamic
        assert r is not None
        tried.append({**r.to_dict(), "split": "valid", "seconds": time.perf_counter() - start})
        print(f"valid lr {lr:g}: {r.static_ppl:.2f} -> {r.ppl:.2f}", flush=True)
    best = min(tried, key=lambda t: t["ppl"])
    test = evaluate(loaded, "test", dynamic=best["lr"], dynamic_decay=args.decay).dynamic
    assert test is not None
    print(f"test lr {best['lr']:g} (chosen on valid): {test.static_ppl:.2f} -> {test.ppl:.2f}")
    record = {
        "benchmark": "dynamic_eval",
        "run": args.run,
        "valid": tried,
        "test": test.to_dict(),
        **provenance(
            device=torch.device("cpu"),
            command=command_line(prog="python benchmarks/dynamic_eval.py"),
        ),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
