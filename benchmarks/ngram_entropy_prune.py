"""Entropy-based pruning (SRILM's ``ngram -prune``) of the PTB 5-gram, beside count pruning.

    ELMAN_DATA=/path/to/corpora python benchmarks/ngram_entropy_prune.py

Builds the interpolated modified Kneser-Ney 5-gram of PTB train in-process, prunes it with
``prune_entropy`` at each threshold, and records the n-gram counts, the sizes of the pruned
model as ARPA text and as elman's binary format, the PTB test perplexity and the pruning time.
Beside them: the count-pruned PTB rows (``lmplz --prune``, elman's build) read from
benchmarks/results/ngram_prune.json, to compare size against perplexity for the two kinds of
pruning. Written to benchmarks/results/ngram_entropy_prune.json with the commit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = (1e-9, 1e-8, 1e-7, 1e-6)


def measure(lm, test: list[str], tmp: Path) -> dict:
    """Counts, ARPA and binary MB and test perplexity of ``lm``."""
    from elman.models.ngram import write_arpa, write_binary

    write_arpa(lm, tmp / "m.arpa")
    write_binary(lm, tmp / "m.bin")
    return {
        "counts": lm.counts(),
        "total": sum(lm.counts()),
        "arpa_mb": (tmp / "m.arpa").stat().st_size / 1e6,
        "binary_mb": (tmp / "m.bin").stat().st_size / 1e6,
        "perplexity": lm.perplexity(test).perplexity,
    }


def count_pruned_rows() -> list[dict]:
    """The PTB rows of benchmarks/results/ngram_prune.json (elman's build, full vocabulary)."""
    record = json.loads((RESULTS / "ngram_prune.json").read_text())
    rows = []
    for r in record["results"]:
        if r["corpus"] == "ptb" and not r["limit"]:
            e = r["elman"]
            keep = ("counts", "total", "arpa_mb", "perplexity")
            rows.append({"prune": r["setting"], **{k: e[k] for k in keep}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "ngram_entropy_prune.json"))
    args = parser.parse_args()
    from elman.data.datasets import resolve
    from elman.files import write_json
    from elman.models.ngram import NgramConfig, NgramLM
    from elman.models.ngram.entropy import prune_entropy
    from elman.provenance import command_line, provenance

    ptb = resolve("ptb")
    test = ptb.lines("test")
    start = time.perf_counter()
    lm = NgramLM.build(ptb.lines("train"), NgramConfig(order=args.order))
    build_s = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        full = {"threshold": 0.0, **measure(lm, test, Path(tmp)), "prune_s": 0.0}
        print(f"unpruned: {full['total']:,} n-grams, perplexity {full['perplexity']:.2f}")
        for threshold in THRESHOLDS:
            start = time.perf_counter()
            pruned = prune_entropy(lm, threshold)
            seconds = time.perf_counter() - start
            row = {"threshold": threshold, **measure(pruned, test, Path(tmp)), "prune_s": seconds}
            rows.append(row)
            print(
                f"threshold {threshold:g}: {row['total']:,} n-grams, {row['arpa_mb']:.1f} MB ARPA, "
                f"{row['binary_mb']:.1f} MB binary, perplexity {row['perplexity']:.2f}, "
                f"pruned in {seconds:.1f} s"
            )
    record = {
        "benchmark": "ngram_entropy_prune",
        "corpus": "ptb",
        "order": args.order,
        "smoothing": "mkn",
        "build_s": build_s,
        "unpruned": full,
        "entropy_pruned": rows,
        "count_pruned": count_pruned_rows(),
        "count_pruned_from": "benchmarks/results/ngram_prune.json",
        **provenance(command=command_line(prog="python benchmarks/ngram_entropy_prune.py")),
    }
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
