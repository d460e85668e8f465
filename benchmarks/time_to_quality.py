"""Time to quality: CPU minutes until PTB validation perplexity first reaches a target.

Three contenders, each in its own process with the same thread count, one after the other or
``--jobs`` of them side by side (2 on a 2-core machine with one thread each):

  a  the plain-PyTorch reference loop (pytorch/examples' word_language_model: nn.Embedding →
     nn.LSTM → nn.Linear, cross entropy, SGD, global-norm clipping) with Zaremba et al.'s (2014)
     small recipe: 2 x 200, U(-0.1, 0.1), batch 20, BPTT 20, lr 1 on the per-sequence loss
     (20 on the per-token mean) for 4 epochs then halved after every epoch, clipping 5 (0.25);
  b  elman's ``recipes/ptb-small-lstm.toml`` (the same recipe);
  c  elman's fastest recipe, ``recipes/ptb-fast.toml``.

Every contender validates after each epoch on the whole validation set at batch 1 (every
token with its full left context), and its clock is the CPU time of its process over training
and validation, from the first step (not the data loading). It stops after the first epoch
whose validation perplexity is at most ``--target`` (120: Zaremba's small model ends at 120.7
valid, 114.5 test); its test perplexity is that model's. A contender that never gets there is
reported with its best validation perplexity and the time it ran.

    python benchmarks/time_to_quality.py [--contenders a b c] [--target 120] [--threads 1]
        [--jobs 1] [--work /tmp/ttq] [--out benchmarks/results/time_to_quality.json]

Writes the JSON record (each contender's curve of validation perplexity against CPU minutes,
its minutes to the target, test perplexity, and speedups over (a)). The machine is shared:
the record holds the load average before each contender; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"b": "recipes/ptb-small-lstm.toml", "c": "recipes/ptb-fast.toml"}
ZAREMBA_SMALL = {  # the reference loop's recipe (a): Zaremba et al. 2014, small
    "hidden": 200, "layers": 2, "batch": 20, "bptt": 20, "lr": 20.0, "clip": 0.25,
    "init": 0.1, "epochs": 13, "decay_start": 4, "decay": 0.5,
}  # fmt: skip
EVAL_CHUNK = 500  # batch-1 evaluation: the state is carried, so the chunk length changes nothing


# ---------------------------------------------------------------------------- (a) reference


def ptb_ids() -> tuple[Any, dict[str, Any]]:
    """PTB's vocabulary (as elman builds it) and each split's ids."""
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary

    ds = resolve("ptb")
    vocab = Vocabulary.build(ds.tokens("train"), specials=ds.specials)
    return vocab, {s: vocab.encode(ds.tokens(s)) for s in ("train", "valid", "test")}


def reference(target: float, threads: int) -> dict[str, Any]:
    """Contender (a): pytorch/examples' loop with Zaremba's small recipe, validated per epoch."""
    import torch
    from reference_lm import ReferenceLM, reference_step
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    cfg = ZAREMBA_SMALL
    vocab, ids = ptb_ids()
    V, H, T, B = len(vocab), cfg["hidden"], cfg["bptt"], cfg["batch"]
    n = ids["train"].numel() // B
    train = ids["train"][: n * B].view(B, n).t().contiguous()  # (n, B): batchify

    def perplexity(model: ReferenceLM, split: str) -> float:
        """Every token of the split scored once at batch 1, <eos> in front (as elman does)."""
        stream = torch.cat([torch.tensor([vocab.eos_index]), ids[split]]).view(-1, 1)
        model.eval()
        total, h = 0.0, None
        with torch.no_grad():
            for i in range(0, stream.size(0) - 1, EVAL_CHUNK):
                x, y = stream[i : i + EVAL_CHUNK], stream[i + 1 : i + 1 + EVAL_CHUNK]
                x = x[: y.size(0)]
                logits, h = model(x, h)
                total += nn.functional.cross_entropy(
                    logits.view(-1, V), y.view(-1), reduction="sum"
                )
        model.train()
        return math.exp(float(total) / (stream.size(0) - 1))

    model = ReferenceLM(V, H, cfg["layers"], init=cfg["init"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    curve: list[dict[str, Any]] = []
    start = time.process_time()
    for epoch in range(1, cfg["epochs"] + 1):
        lr = cfg["lr"] * cfg["decay"] ** max(epoch - cfg["decay_start"], 0)
        for group in opt.param_groups:
            group["lr"] = lr
        h = None
        for i in range(0, n - 1, T):
            y = train[i + 1 : i + 1 + T]
            h = reference_step(model, opt, train[i : i + y.size(0)], y, h, cfg["clip"])
        ppl = perplexity(model, "valid")
        curve.append({"epoch": epoch, "cpu_time_s": time.process_time() - start, "ppl": ppl})
        print(f"(a) epoch {epoch} valid ppl {ppl:.2f}", file=sys.stderr, flush=True)
        if ppl <= target:
            break
    return {"curve": curve, "test_ppl": perplexity(model, "test")}


# ---------------------------------------------------------------------------- (b), (c) elman


def valid_records(run_dir: Path) -> list[dict[str, Any]]:
    from elman.files import read_jsonl

    path = run_dir / "metrics.jsonl"
    return [r for r in read_jsonl(path) if r.get("kind") == "valid"] if path.exists() else []


def elman_run(recipe: str, work: Path, target: float, threads: int) -> dict[str, Any]:
    """``elman train RECIPE``, stopped (SIGTERM: it saves and exits) at the first epoch that
    reaches the target; that epoch's model (its epochN.pt) is tested. Not SIGINT: a job started
    in the background ignores SIGINT, and so do the processes it starts."""
    from elman.tasks.evaluation import evaluate

    run_dir = work / Path(recipe).stem
    cmd = [sys.executable, "-m", "elman", "train", str(ROOT / recipe), "--out", str(run_dir)]
    cmd += ["--set", f"train.threads={threads}", "--set", "train.progress=false"]
    # every epoch's model is kept: the stop lands a few steps after the target epoch's end
    cmd += ["--set", "train.keep_epochs=100000"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(work / f"{run_dir.name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        reached = False
        while proc.poll() is None:
            time.sleep(1.0)
            if not reached and any(r["ppl"] <= target for r in valid_records(run_dir)):
                reached = True
                proc.send_signal(signal.SIGTERM)
        if proc.returncode not in (0, 128 + signal.SIGTERM) or (proc.returncode and not reached):
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log.name}")
    curve = [
        {"epoch": r["epoch"], "cpu_time_s": r["cpu_time"], "ppl": r["ppl"]}
        for r in valid_records(run_dir)
    ]
    checkpoint = run_dir / "best.pt"
    if reached:  # the records after the first one at the target were not asked for
        first = next(i for i, p in enumerate(curve) if p["ppl"] <= target)
        curve = curve[: first + 1]
        checkpoint = run_dir / f"epoch{curve[-1]['epoch']}.pt"
    test = evaluate(checkpoint, "test", device="cpu")
    return {"recipe": recipe, "curve": curve, "test_ppl": test.metrics["ppl"]}


# ---------------------------------------------------------------------------- the record


def summarise(result: dict[str, Any], target: float) -> dict[str, Any]:
    curve = result["curve"]
    at = next((p for p in curve if p["ppl"] <= target), None)
    result["reached"] = at is not None
    result["epochs"] = len(curve)
    result["cpu_minutes"] = round(curve[-1]["cpu_time_s"] / 60, 2)
    result["cpu_minutes_to_target"] = round(at["cpu_time_s"] / 60, 2) if at else None
    result["valid_ppl"] = round(at["ppl"] if at else min(p["ppl"] for p in curve), 2)
    result["test_ppl"] = round(result["test_ppl"], 2)
    for p in curve:
        p["cpu_time_s"], p["ppl"] = round(p["cpu_time_s"], 1), round(p["ppl"], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contenders", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    ap.add_argument("--target", type=float, default=120.0, help="validation perplexity (120)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every contender (1)")
    ap.add_argument("--jobs", type=int, default=1, help="contenders run side by side (1)")
    ap.add_argument("--work", default="/tmp/time_to_quality", help="run folders (/tmp/...)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/time_to_quality.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # contender (a) in its own process
        print(json.dumps(reference(args.target, args.threads)))
        return
    from elman.files import write_json
    from elman.provenance import command_line, machine, provenance

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        **provenance("cpu", command_line(prog="python benchmarks/time_to_quality.py")),
        "target_valid_ppl": args.target,
        "threads": args.threads,
        "contenders": {},
    }

    def contend(name: str) -> dict[str, Any]:
        load = os.getloadavg()
        if name == "a":
            child = [sys.executable, __file__, "--child", "--target", str(args.target)]
            out = subprocess.run(
                [*child, "--threads", str(args.threads)], capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(f"contender (a) failed:\n{out.stderr[-2000:]}")
            result = {"recipe": "reference loop, Zaremba small", **json.loads(out.stdout)}
        else:
            result = elman_run(RECIPES[name], work, args.target, args.threads)
        result = summarise(result, args.target)
        result["machine"] = machine(load)
        print(
            f"({name}) {result['recipe']}: "
            + (
                f"valid {result['valid_ppl']} after {result['cpu_minutes_to_target']} CPU min"
                if result["reached"]
                else f"not reached (best valid {result['valid_ppl']}, {result['cpu_minutes']} min)"
            )
            + f", test {result['test_ppl']}",
            flush=True,
        )
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each contender is a process
        done = dict(zip(args.contenders, pool.map(contend, args.contenders), strict=True))
    report["jobs"] = args.jobs
    report["contenders"] = {name: done[name] for name in args.contenders}
    base = report["contenders"].get("a")
    if base and base["reached"]:
        report["speedup_over_a"] = {
            k: round(base["cpu_minutes_to_target"] / c["cpu_minutes_to_target"], 2)
            for k, c in report["contenders"].items()
            if c["reached"]
        }
        print("speed-up over (a): " + json.dumps(report["speedup_over_a"]), flush=True)
    write_json(args.out, report)


if __name__ == "__main__":
    main()
