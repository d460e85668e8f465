"""A language model with and without its neural cache (Grave et al. 2017), on one corpus.

    ELMAN_DATA=/path/to/corpora python benchmarks/neural_cache.py runs/ptb-small-lstm \
        --sizes 100 500 2000 --out benchmarks/results/neural_cache.json

For each cache size N, ``elman.evaluate(run, "test", cache=N)``: θ and λ tuned together on the
valid split, then the test perplexity with and without the cache (batch 1, every token with
its full left context). Written with the commit, so run it from a clean tree.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a language model's run folder or checkpoint")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    from elman.files import write_json
    from elman.provenance import command_line, provenance
    from elman.tasks.evaluation import evaluate
    from elman.tasks.loading import load

    torch.set_num_threads(1)
    loaded = load(args.run, "cpu")
    rows = []
    for size in args.sizes:
        start = time.perf_counter()
        result = evaluate(loaded, "test", cache=size)
        assert result.cache is not None
        rows.append({**result.cache.to_dict(), "seconds": time.perf_counter() - start})
        c = result.cache
        print(
            f"N={size}: test ppl {c.neural_ppl:.2f} -> {c.ppl:.2f} (theta {c.theta:g}, "
            f"lambda {c.lam:.2f}, tuned on valid)",
            flush=True,
        )
    record = {
        "benchmark": "neural_cache",
        "run": args.run,
        "data": result.data,
        "results": rows,
        **provenance(
            device=torch.device("cpu"),
            command=command_line(prog="python benchmarks/neural_cache.py"),
        ),
    }
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
