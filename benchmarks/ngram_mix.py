"""A merged (statically interpolated) n-gram model beside the dynamic mixture it approximates.

    ELMAN_DATA=/path/to/corpora python benchmarks/ngram_mix.py

Builds the interpolated modified Kneser-Ney 5-grams of PTB and of WikiText-2 (two domains,
two vocabularies), then runs, as a user would,

    elman ngram mix ptb5.arpa wt2-5.arpa --tune ptb --data ptb --split test --out mixed.arpa

(weights tuned by EM on PTB valid), and records each model's PTB test perplexity, the dynamic
mixture's, the merged model's, the n-gram counts, and the wall time and peak memory of the
mix command. Written to benchmarks/results/ngram_mix.json with the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def elman(*args: str) -> tuple[str, float, float]:
    """Run ``elman ARGS``: its stdout, wall seconds and peak resident MB (from wait4)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "elman", *args], stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"elman {' '.join(args)} failed")
        out.seek(0)
        return out.read().decode(), wall, usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ngram_mix.json"))
    args = parser.parse_args()
    from elman.files import write_json
    from elman.provenance import command_line, provenance

    order = str(args.order)
    with tempfile.TemporaryDirectory() as tmp:
        ptb, wt2, mixed = (str(Path(tmp) / n) for n in ("ptb.arpa", "wt2.arpa", "mixed.arpa"))
        elman("ngram", "build", "--order", order, "--data", "ptb", "--out", ptb)
        elman("ngram", "build", "--order", order, "--data", "wikitext-2", "--out", wt2)
        command = ["ngram", "mix", ptb, wt2, "--tune", "ptb", "--data", "ptb", "--out", mixed]
        out, wall, peak = elman(*command, "--split", "test", "--json")
        result = json.loads(out)
    names = ["ptb-kn5", "wikitext2-kn5"]
    result["perplexity"] = dict(zip(names, result["perplexity"].values(), strict=True))
    result.pop("models"), result.pop("out")
    record = {
        "benchmark": "ngram_mix",
        "mix_command": "elman ngram mix ptb5.arpa wt2-5.arpa --tune ptb --data ptb --split test "
        "--out mixed.arpa --json",
        "mix_wall_s": wall,
        "mix_peak_mb": peak,
        **result,
        "static_over_dynamic": result["merged_perplexity"] / result["dynamic_perplexity"],
        **provenance(command=command_line(prog="python benchmarks/ngram_mix.py")),
    }
    print(
        f"PTB test: ptb-kn5 {result['perplexity']['ptb-kn5']:.2f}, wikitext2-kn5 "
        f"{result['perplexity']['wikitext2-kn5']:.2f}, dynamic mixture "
        f"{result['dynamic_perplexity']:.2f}, merged model {result['merged_perplexity']:.2f} "
        f"(lambda {result['lambda'][0]:.3f}); mix took {wall:.1f} s, {peak:.0f} MB"
    )
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
