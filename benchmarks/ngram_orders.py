"""More context lowers perplexity: n-gram orders 1–5 on PTB, one results file (issue #19).

    python benchmarks/ngram_orders.py --orders 1 2 3 4 5 --out results/ptb-ngram-orders.json

For each order N: ``elman ngram build --order N --smoothing mkn --data ptb`` (interpolated
modified Kneser-Ney, N − 1 words of history), then ``elman ngram eval`` on valid and test. The
record's ``metrics`` are those of the highest order; ``orders`` holds every order's valid and
test perplexity and its number of n-grams; ``steps`` every command run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def elman(args: list[str], log: list[str]) -> str:
    log.append("elman " + " ".join(args))
    done = subprocess.run(
        [sys.executable, "-m", "elman", *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def ngram_counts(arpa: Path) -> list[int]:
    """The ``ngram N=COUNT`` lines of an ARPA header."""
    counts = []
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                break
            if line.startswith("ngram "):
                counts.append(int(line.split("=")[1]))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--data", default="ptb")
    parser.add_argument("--out", required=True, help="the results file to write")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from elman.files import check_writable, write_json
    from elman.provenance import command_line, provenance

    check_writable(args.out, "results file")
    start = time.perf_counter()
    log: list[str] = []
    orders: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.orders):
            arpa = str(Path(tmp) / f"{args.data}-kn{n}.arpa")
            elman(["ngram", "build", "--order", str(n), "--smoothing", "mkn", "--data",
                   args.data, "--out", arpa], log)  # fmt: skip
            row: dict = {}
            for split in ("valid", "test"):
                out = elman(["ngram", "eval", arpa, "--data", args.data, "--split", split,
                             "--json"], log)  # fmt: skip
                row[split] = {"ppl": json.loads(out)["perplexity"]}
            row["ngrams"] = ngram_counts(Path(arpa))
            orders[str(n)] = row
            print(f"order {n}: valid {row['valid']['ppl']:.2f}  test {row['test']['ppl']:.2f}")
    top = orders[str(max(args.orders))]
    record = {
        "recipe": f"{args.data}-ngram-orders",
        "aim": "perplexity falls as the n-gram's history grows (orders "
        + ", ".join(map(str, sorted(args.orders)))
        + ", modified Kneser-Ney)",
        "task": "ngram",
        "dataset": args.data,
        "metrics": {"valid": top["valid"], "test": top["test"]},
        "orders": orders,
        "steps": log,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance(None, command_line(prog="python benchmarks/ngram_orders.py")),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
