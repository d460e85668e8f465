"""How fast a language-model recipe trains here: tokens/s over a few hundred steps, and the epoch
time that implies (what a 4 CPU-hour or GPU-day budget buys).

    python benchmarks/recipe_speed.py RECIPE [--steps 300] [--device cpu|cuda] [--threads N]
        [--out benchmarks/results/recipe_speed_NAME.json]

Runs ``elman train RECIPE --set train.max_steps=STEPS`` in a temporary folder (nothing is kept
but the record) and reads the training windows of its metrics.jsonl: the first window (warm-up,
allocation, cuDNN autotuning) is left out, the median of the rest is the rate. The projected
epoch is the training split's tokens over that rate, validation not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--steps", type=int, default=300, help="training steps timed (300)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    ap.add_argument("--out", help="the record (default: benchmarks/results/recipe_speed_NAME.json)")
    args = ap.parse_args()
    import torch  # noqa: F401  (loaded, so that the record names its version)

    from elman.files import read_jsonl, write_json
    from elman.provenance import command_line, machine, provenance

    name = Path(args.recipe).stem
    load = os.getloadavg()
    log_every = max(1, args.steps // 6)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "elman", "train", args.recipe, "--out", tmp]
        for key, value in {
            "train.max_steps": args.steps, "train.log_every": log_every,
            "train.device": args.device, "train.threads": args.threads, "train.progress": "false",
        }.items():  # fmt: skip
            cmd += ["--set", f"{key}={value}"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        windows = [r for r in read_jsonl(Path(tmp) / "metrics.jsonl") if r["kind"] == "train"]
        recipe = json.loads((Path(tmp) / "recipe.json").read_text())
    rates = [r["tokens_per_s"] for r in windows[1:]] or [windows[0]["tokens_per_s"]]
    rate = statistics.median(rates)
    from elman.data.datasets import resolve

    train_tokens = sum(1 for _ in resolve(recipe["data"]["dataset"]).tokens("train"))
    record = {
        **provenance(args.device, command_line(prog="python benchmarks/recipe_speed.py")),
        "recipe": name,
        "steps": args.steps,
        "threads": args.threads,
        "tokens_per_s": round(rate, 1),
        "window_rates": [round(r, 1) for r in rates],
        "train_tokens": train_tokens,
        "projected_epoch_minutes": round(train_tokens / rate / 60, 2),
        "machine": machine(load),
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"recipe_speed_{name}.json"
    write_json(out, record)
    print(
        f"{name} on {args.device}: {rate:,.0f} tokens/s, an epoch of {train_tokens:,} tokens in "
        f"{record['projected_epoch_minutes']} min"
    )


if __name__ == "__main__":
    main()
