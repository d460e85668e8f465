"""n-gram models: build time and peak memory, ARPA I/O, and scoring throughput.

    ELMAN_DATA=/path/to/corpora .venv/bin/python benchmarks/ngram.py [--reps 3]

Cases (each in a fresh subprocess, so its peak resident memory is its own):

* ``ptb-5gram``: interpolated modified Kneser-Ney 5-gram on PTB train (goal <= 10 s and
  <= 300 MB peak; KenLM's lmplz takes 2.1 s and 0.42 GB on this machine class), then
  writing and reading its ARPA file (reported, no goal);
* ``wikitext2-5gram``: the same on WikiText-2 train (goal <= 30 s);
* ``ptb-score``: scoring PTB test with the PTB 5-gram, tokens (words + </s>) per second,
  text to log-probabilities, tokenisation included (goal >= 1M tokens/s).

Build time is from the list of lines to the finished model (counting and smoothing);
peak memory is the subprocess's maximum resident set size (``ru_maxrss``), which also
holds the interpreter, NumPy and the corpus text (``baseline_mb`` is that part, measured
before building).  Times are medians over ``--reps`` runs; the load average is recorded
since other jobs may share the CPU.  Results go to benchmarks/results/ngram.json with
the commit they ran at (``-dirty`` when tracked files differ from it: run from a clean
tree) and, under ``before``, the PTB 5-gram measurement this benchmark's memory goal was
set against (:data:`BEFORE`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"ptb-5gram": {"build_s": 10.0, "peak_mb": 300.0}, "wikitext2-5gram": {"build_s": 30.0}}
THROUGHPUT_GOAL = 1_000_000  # tokens per second
KENLM = {"build_s": 2.1, "peak_mb": 0.42 * 1024}
DATASETS = {"ptb-5gram": "ptb", "wikitext2-5gram": "wikitext-2"}
# The PTB 5-gram build before `elman ngram` dropped torch (it came in through
# elman.data) and before the counts were streamed and held as int32; from the results
# file of commit b1cbf5e, measured at ae1acaf (the n-gram code is the same at f00569f),
# and measured again at f00569f (this file's --case ptb-5gram, from a clean checkout).
BEFORE = {
    "case": "ptb-5gram",
    "commit": "ae1acaf",
    "date": "2026-11-26T07:09:13+00:00",
    "command": "python benchmarks/ngram.py --reps 3",
    "baseline_mb": 244.19921875,
    "peak_mb": 501.9609375,
    "build_s": 1.3554284930000904,
    "build_s_all": [1.539874705000102, 1.3554284930000904, 1.3354852219999884],
    "peak_mb_with_arpa_io": 622.4609375,
    "loadavg_before": [4.06689453125, 4.40966796875, 3.916015625],
    "remeasured": {
        "commit": "f00569f",
        "date": "2026-11-29T19:09:00+00:00",
        "command": "python benchmarks/ngram.py --case ptb-5gram --reps 3",
        "baseline_mb": 252.11328125,
        "peak_mb": 511.4765625,
        "build_s": 0.6489269650001006,
        "build_s_all": [0.7326503080000748, 0.6489269650001006, 0.6333420070000102],
        "peak_mb_with_arpa_io": 632.0703125,
        "loadavg_before": [0.87, 1.73, 1.42],
    },
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_case(case: str, reps: int) -> dict:
    """One case, in this process; returns its measurements."""
    from elman.data.datasets import resolve
    from elman.models.ngram import NgramConfig, NgramLM, read_arpa, write_arpa

    name = "ptb" if case == "ptb-score" else DATASETS[case]
    ds = resolve(name)
    train = ds.lines("train")
    config = NgramConfig(order=5, smoothing="mkn")
    out: dict = {"case": case, "data": name, "order": 5, "smoothing": "mkn"}
    if case == "ptb-score":
        test = ds.lines("test")
        lm = NgramLM.build(train, config)
        times = []
        for _ in range(max(reps, 5)):
            start = time.perf_counter()
            logp = lm.log10probs(test)
            times.append(time.perf_counter() - start)
        enc = lm.encode(test)
        model_only = []
        for _ in range(max(reps, 5)):
            start = time.perf_counter()
            lm.score_encoded(enc)
            model_only.append(time.perf_counter() - start)
        tokens = len(logp)
        out.update(
            tokens=tokens,
            score_s=statistics.median(times),
            tokens_per_s=tokens / statistics.median(times),
            tokens_per_s_after_tokenising=tokens / statistics.median(model_only),
            perplexity=10 ** (-float(logp.sum()) / tokens),
            goal_tokens_per_s=THROUGHPUT_GOAL,
        )
        out["ratio_to_goal"] = out["tokens_per_s"] / THROUGHPUT_GOAL
        return out
    out["baseline_mb"] = _peak_mb()
    times = []
    for _ in range(reps):
        lm = None  # free the previous model before building the next
        start = time.perf_counter()
        lm = NgramLM.build(train, config)
        times.append(time.perf_counter() - start)
    out.update(build_s=statistics.median(times), build_s_all=times, peak_mb=_peak_mb())
    out["ngrams"] = lm.counts()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.arpa"
        start = time.perf_counter()
        write_arpa(lm, path)
        out["arpa_write_s"] = time.perf_counter() - start
        out["arpa_mb"] = path.stat().st_size / 2**20
        lm = None
        start = time.perf_counter()
        read_arpa(path)
        out["arpa_read_s"] = time.perf_counter() - start
    out["peak_mb_with_arpa_io"] = _peak_mb()
    goal = GOALS[case]
    out["goal"] = goal
    out["build_ratio_to_goal"] = out["build_s"] / goal["build_s"]
    if "peak_mb" in goal:
        out["memory_ratio_to_goal"] = out["peak_mb"] / goal["peak_mb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ngram.json"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.reps)))
        return
    from elman.files import write_json
    from elman.provenance import command_line, git_commit, machine, provenance

    commit = git_commit()
    print(f"commit {commit}")
    load_before = os.getloadavg()
    results = []
    for case in ("ptb-5gram", "wikitext2-5gram", "ptb-score"):
        proc = subprocess.run(
            [sys.executable, __file__, "--case", case, "--reps", str(args.reps)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            print(f"{case}: failed\n{proc.stderr}", file=sys.stderr)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        if "build_s" in r:
            line = (
                f"{case:16s} build {r['build_s']:6.2f} s (goal {r['goal']['build_s']:.0f} s, "
                f"ratio {r['build_ratio_to_goal']:.2f})  peak {r['peak_mb']:6.0f} MB"
            )
            if "memory_ratio_to_goal" in r:
                line += (
                    f" (goal {r['goal']['peak_mb']:.0f} MB, ratio {r['memory_ratio_to_goal']:.2f})"
                )
            line += f"  ARPA write {r['arpa_write_s']:.1f} s, read {r['arpa_read_s']:.1f} s"
            print(line)
        else:
            print(
                f"{case:16s} {r['tokens_per_s'] / 1e6:.2f}M tokens/s (goal 1M, ratio "
                f"{r['ratio_to_goal']:.2f}); {r['tokens_per_s_after_tokenising'] / 1e6:.2f}M "
                f"tokens/s after tokenising; PPL {r['perplexity']:.2f}"
            )
    ptb = next((r for r in results if r["case"] == "ptb-5gram"), None)
    if ptb is not None:
        print(
            f"ptb-5gram before ({BEFORE['commit']}): peak {BEFORE['peak_mb']:.0f} MB, "
            f"build {BEFORE['build_s']:.2f} s; now ({commit}): peak {ptb['peak_mb']:.0f} MB, "
            f"build {ptb['build_s']:.2f} s"
        )
    record = {
        "benchmark": "ngram",
        "results": results,
        "before": BEFORE,
        "kenlm_reference": KENLM,
        "machine": machine(load_before),
        **provenance(command=command_line(prog="python benchmarks/ngram.py")),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
