"""One recipe over several seeds: every seed's numbers, their mean and standard deviation.

    python benchmarks/seeds.py recipes/ud-lines-upos-ablate-uni.toml --seeds 1 2 3 \
        --name ud-lines-upos-uni-3seeds --out results/ud-lines-upos-uni-3seeds.json

Runs ``elman train RECIPE --set train.seed=S [--set …] --results …`` for each seed in turn (one
process at a time; ``--work`` keeps the runs), then writes one results file: ``metrics`` holds
the mean over the seeds of each split's numbers, ``std`` their sample standard deviation
(n − 1), ``seeds`` every seed's own metrics and record. An effect smaller than the spread of the
seeds is not an effect (docs/lecture.md uses these files).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ("ppl", "loss", "accuracy", "unseen_accuracy", "bleu", "chrf", "mse", "bpc")


def summarise(per_seed: dict[str, dict]) -> tuple[dict, dict]:
    """The mean and the sample standard deviation of every number of every split."""
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    splits = {s for m in per_seed.values() for s in m}
    for split in sorted(splits):
        keys = set.intersection(*(set(m.get(split, {})) for m in per_seed.values()))
        for key in sorted(k for k in keys if k in NUMBERS):
            values = [float(m[split][key]) for m in per_seed.values()]
            mean.setdefault(split, {})[key] = statistics.fmean(values)
            std.setdefault(split, {})[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--set", action="append", default=[], help="a recipe override (repeat)")
    parser.add_argument("--name", required=True, help="the record's name")
    parser.add_argument(
        "--work", default="runs/seeds", help="the runs go here (default runs/seeds)"
    )
    parser.add_argument("--out", required=True, help="the results file to write")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds: two or more, for a standard deviation")
    sys.path.insert(0, str(ROOT / "src"))
    from elman.files import check_writable, write_json
    from elman.provenance import command_line, provenance

    check_writable(args.out, "results file")
    start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    overrides = [a for s in args.set for a in ("--set", s)]
    per_seed, records, log = {}, {}, []
    for seed in args.seeds:
        run, result = work / f"{args.name}-s{seed}", work / f"{args.name}-s{seed}.json"
        cmd = ["train", args.recipe, "--set", f"train.seed={seed}", *overrides, "--set",
               "train.progress=false", "--out", str(run), "--results", str(result)]  # fmt: skip
        log.append("elman " + " ".join(cmd))
        subprocess.run([sys.executable, "-m", "elman", *cmd], check=True)
        record = json.loads(result.read_text(encoding="utf-8"))
        per_seed[str(seed)] = record["metrics"]
        records[str(seed)] = {k: record.get(k) for k in ("wall_time_s", "parameters", "commit")}
    mean, std = summarise(per_seed)
    first = json.loads((work / f"{args.name}-s{args.seeds[0]}.json").read_text(encoding="utf-8"))
    out = {
        "recipe": args.name,
        "aim": f"{first.get('aim', '')} — mean over seeds {', '.join(map(str, args.seeds))}",
        "task": first.get("task"),
        "dataset": first.get("dataset"),
        "parameters": first.get("parameters"),
        "metrics": mean,
        "std": std,
        "seeds": {s: {"metrics": per_seed[s], **records[s]} for s in per_seed},
        "overrides": args.set,
        "steps": log,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance("cpu", command_line(prog="python benchmarks/seeds.py")),
    }
    write_json(args.out, out)
    print(f"wrote {args.out}: " + json.dumps({"mean": mean.get("test"), "std": std.get("test")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
