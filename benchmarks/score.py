"""``elman score`` throughput: sentences/s and tokens/s on the PTB test set, KN5 and an LSTM LM.

    ELMAN_DATA=/path/to/corpora python benchmarks/score.py [--checkpoint RUN_OR_PT] [--reps 3]

Models:

* ``kn5``: interpolated modified Kneser-Ney 5-gram of PTB train, built by
  ``elman ngram build --order 5 --data ptb`` into a temporary ARPA file and read back;
* ``lstm``: ``--checkpoint`` (a run folder or .pt of an LM, e.g. a trained ``ptb-small-lstm``),
  or, without one, the ``ptb-small-lstm`` recipe (2 x 200 LSTM, 10k softmax) trained here for
  ``--steps`` steps only (default 300, about 0.3 epoch): the speed of scoring depends on the
  architecture, not on how well it is trained, and the record says which model it timed.

Each (model, threads) case runs in a fresh subprocess with ``torch.set_num_threads`` 1 or 2:
the 3,761 lines of ptb.test.txt (82,430 tokens: words + one </s> a line) scored with
:func:`elman.tasks.scoring.score_lines` as ``elman score`` scores them (chunks of 1,000 lines,
neural batches of 64 sentences of similar length), from text to SentenceScores, model loading
excluded (timed apart). Times are medians over ``--reps`` runs; the load average is recorded,
since other jobs may share the CPU. The record goes to benchmarks/results/score.json with the
commit it ran at (``-dirty`` when tracked files differ from it: run from a clean checkout).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ptb-small-lstm.toml"
THREADS = (1, 2)


def run_case(model: str, path: str, threads: int, reps: int) -> dict:
    """Score PTB test with ``path`` on ``threads`` threads, in this process."""
    import torch

    from elman.data.datasets import resolve
    from elman.tasks.scoring import load_scorer, score_lines

    torch.set_num_threads(threads)
    lines = resolve("ptb").lines("test")
    start = time.perf_counter()
    scorer = load_scorer(path, "cpu", batch_size=64)
    load_s = time.perf_counter() - start
    times, scores = [], []
    for _ in range(reps):
        start = time.perf_counter()
        scores = list(score_lines(scorer, lines))
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    tokens = sum(s.tokens for s in scores)
    logprob = sum(s.logprob for s in scores)
    return {
        "model": model,
        "threads": threads,
        "sentences": len(scores),
        "tokens": tokens,
        "load_s": load_s,
        "score_s": seconds,
        "score_s_all": times,
        "sentences_per_s": len(scores) / seconds,
        "tokens_per_s": tokens / seconds,
        "ppl_sentence_convention": math.exp(-logprob / tokens),
        "oovs": sum(s.oovs for s in scores),
    }


def build_kn5(folder: Path) -> Path:
    arpa = folder / "ptb-kn5.arpa"
    cmd = [sys.executable, "-m", "elman", "ngram", "build", "--order", "5", "--data", "ptb"]
    subprocess.run([*cmd, "--out", str(arpa)], check=True, capture_output=True)
    return arpa


def train_lstm(folder: Path, steps: int) -> Path:
    """The ptb-small-lstm recipe, ``steps`` steps (validation batches of 20 to save time)."""
    run = folder / "ptb-small-lstm"
    sets = [f"train.max_steps={steps}", "data.eval_batch_size=20", "train.progress=false"]
    cmd = [sys.executable, "-m", "elman", "train", str(RECIPE), "--out", str(run)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, capture_output=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="an LM run folder or .pt (default: train one here)")
    parser.add_argument("--steps", type=int, default=300, help="training steps without one")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)  # model path threads reps
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "score.json"))
    args = parser.parse_args()
    if args.case:
        model, path, threads, reps = args.case
        print(json.dumps(run_case(model, path, int(threads), int(reps))))
        return
    from elman.files import write_json
    from elman.provenance import command_line, git_commit, machine, provenance

    print(f"commit {git_commit()}")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        kn5 = build_kn5(Path(tmp))
        if args.checkpoint:
            lstm, trained = Path(args.checkpoint), None
        else:
            lstm = train_lstm(Path(tmp), args.steps)
            trained = {
                "recipe": "recipes/ptb-small-lstm.toml",
                "max_steps": args.steps,
                "note": "trained here for a capped number of steps: timing only",
            }
        results = []
        for model, path in (("kn5", kn5), ("lstm", lstm)):
            for threads in THREADS:
                proc = subprocess.run(
                    [sys.executable, __file__, "--case", model, str(path), str(threads),
                     str(args.reps)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append(r)
                print(
                    f"{model:5s} {threads} thread(s): {r['sentences_per_s']:9.0f} sentences/s "
                    f"{r['tokens_per_s']:10.0f} tokens/s  (load {r['load_s']:.1f} s, "
                    f"ppl {r['ppl_sentence_convention']:.1f})"
                )
    record = {
        "benchmark": "score",
        "data": "ptb/test (3,761 lines)",
        "results": results,
        "lstm_checkpoint": str(args.checkpoint) if args.checkpoint else trained,
        "machine": machine(load_before),
        **provenance(command=command_line(prog="python benchmarks/score.py")),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
