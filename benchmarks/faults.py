"""Fault injection: `kill -9` at random moments, and nothing is lost or silently wrong.

    python benchmarks/faults.py [--kills 60] [--seed 1] [--out benchmarks/results/faults.json]

Three kinds of work are killed with SIGKILL (no handler runs, as when the machine dies or the
OOM killer strikes) at random moments, then checked:

* ``train``: `elman train` of a small LSTM LM that saves every second step, so kills land in
  training steps, in checkpoint saves (a temporary file left beside them shows it) and in
  epoch ends. After every kill each checkpoint of the
  run folder must load (its checksum verified), ``metrics.jsonl`` must read back, and the run is
  resumed (or started again when no checkpoint was written yet) until it ends; the final
  weights must equal an uninterrupted run's, bit for bit.
* ``arpa``: `elman ngram build --out MODEL.arpa` over an existing model. After every kill the
  file must be the old model or the new one, byte for byte, never a torn mix.
* ``results``: `elman eval --results R.json` over an existing results file: after a kill the
  file is the old or the new record, and valid JSON.

Kills are spread over the three kinds (half of them in training). The figures (kills per kind,
kills that caught a save in flight, files lost or corrupted, resumes that ended elsewhere) go
to ``benchmarks/results/faults.json`` with the provenance of the run, and beside them the
checkpoint bit-flip figures of ``benchmarks/faults_checkpoint.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ELMAN = [sys.executable, "-m", "elman"]
WORDS = [f"w{i}" for i in range(2000)]  # a 2,000-word softmax: checkpoints of a few MB


def corpus(folder: Path, seed: int, lines: int = 3000) -> Path:
    """A word corpus with some structure (a Markov chain over the words), train/valid/test."""
    rng = random.Random(seed)
    follow = {w: rng.sample(WORDS, 8) for w in WORDS}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", lines), ("valid", lines // 10), ("test", lines // 10)):
        out = []
        for _ in range(n):
            w = rng.choice(WORDS)
            sentence = [w]
            for _ in range(rng.randint(4, 14)):
                w = rng.choice(follow[w])
                sentence.append(w)
            out.append(" ".join(sentence))
        (folder / f"{split}.txt").write_text("\n".join(out) + "\n")
    return folder


RECIPE = """\
[recipe]
name = "faults"
task = "lm"
aim = "fault injection"

[data]
dataset = "{corpus}"
batch_size = 8
bptt = 20

[model]
cell = "lstm"
embedding_dim = 96
hidden_size = 96
num_layers = 2
dropout_hidden = 0.2

[train]
epochs = 3
optimizer = "adam"
lr = 0.003
save_every = 2
log_every = 20
threads = 1
device = "cpu"
progress = false
"""


def run(args: list[str], cwd: Path, kill_after: float | None) -> tuple[bool, float]:
    """Run ``elman ARGS``; SIGKILL it after ``kill_after`` seconds. (killed?, seconds run)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*ELMAN, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"elman {' '.join(args)} failed ({proc.returncode}): {err[-500:]}")
    return False, time.perf_counter() - start


def weights(path: Path) -> dict:
    from elman.train.checkpoint import load_checkpoint

    return load_checkpoint(path)["model"]


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_run_folder(run_dir: Path) -> list[str]:
    """What is wrong with a killed run's folder: checkpoints that fail, unreadable metrics."""
    from elman.errors import ElmanError
    from elman.files import read_jsonl
    from elman.train.checkpoint import load_checkpoint

    problems = []
    for ckpt in sorted(run_dir.glob("*.pt")):
        try:
            load_checkpoint(ckpt)
        except ElmanError as err:
            problems.append(f"{ckpt.name}: {err}")
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        try:
            read_jsonl(metrics)
        except (ElmanError, UnicodeDecodeError) as err:
            problems.append(f"metrics.jsonl: {err}")
    return problems


def train_trials(work: Path, kills: int, rng: random.Random) -> dict:
    """Kill training ``kills`` times in all, over as many runs as it takes; each run resumed
    to its end and compared with the uninterrupted reference."""
    recipe = work / "faults.toml"
    recipe.write_text(RECIPE.format(corpus=corpus(work / "corpus", seed=1)))
    _, reference_s = run(["train", str(recipe), "--out", str(work / "reference")], work, None)
    reference = weights(work / "reference" / "last.pt")
    record = {"kills": 0, "during_save": 0, "problems": [], "runs": 0, "exact": 0}
    while record["kills"] < kills:
        record["runs"] += 1
        run_dir = work / f"run{record['runs']}"
        while True:
            resume = (run_dir / "last.pt").exists()
            args = ["train", "--resume", str(run_dir)] if resume else ["train", str(recipe)]
            args += [] if resume else ["--out", str(run_dir)]
            budget = kills - record["kills"]
            moment = rng.uniform(1.0, reference_s) if budget > 0 else None
            killed, _ = run(args, work, moment)
            if not killed:
                break
            record["kills"] += 1
            # a temporary beside the checkpoints: the kill caught a save in flight
            record["during_save"] += any(p.suffix == ".tmp" for p in run_dir.glob(".*"))
            record["problems"] += [f"{run_dir.name}: {p}" for p in check_run_folder(run_dir)]
        record["exact"] += same_weights(weights(run_dir / "last.pt"), reference)
    record["reference_seconds"] = round(reference_s, 1)
    return record


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def arpa_trials(work: Path, kills: int, rng: random.Random) -> dict:
    """Kill `elman ngram build --out M.arpa` over an existing M.arpa: old or new, never torn."""
    data = corpus(work / "ngram-corpus", seed=2, lines=40000)
    target = work / "model.arpa"
    build = ["ngram", "build", "--data", str(data), "--out"]
    run([*build, str(work / "new.arpa"), "--order", "5"], work, None)
    run([*build, str(target), "--order", "3"], work, None)
    old, new = sha(target), sha(work / "new.arpa")
    record = {"kills": 0, "old": 0, "new": 0, "torn": 0, "temporaries_left": 0}
    start = time.perf_counter()
    run([*build, str(work / "timing.arpa"), "--order", "5"], work, None)
    seconds = time.perf_counter() - start
    for _ in range(3 * kills):  # a build that ends before its moment is not a kill: try again
        if record["kills"] == kills:
            break
        killed, _ = run([*build, str(target), "--order", "5"], work, rng.uniform(0.5, seconds))
        record["kills"] += killed
        digest = sha(target)
        key = "old" if digest == old else "new" if digest == new else "torn"
        record[key] += 1
        if key == "new":  # put the old model back for the next kill
            run([*build, str(target), "--order", "3"], work, None)
    run([*build, str(target), "--order", "3"], work, None)  # a clean write after the kills
    record["temporaries_left"] = sum(1 for p in work.glob(".model.arpa.*"))
    return record


def scores(record: dict) -> dict:
    """A results record's metrics without their timings (which differ from run to run)."""
    return {
        split: {k: v for k, v in m.items() if k != "seconds"}
        for split, m in record["metrics"].items()
    }


def results_trials(work: Path, kills: int, rng: random.Random) -> dict:
    """Kill `elman eval --results R.json` over an existing R.json: old or new record."""
    run_dir = work / "reference"
    target = work / "r.json"
    args = ["eval", str(run_dir), "--device", "cpu", "--results", str(target)]
    start = time.perf_counter()
    run(args, work, None)
    seconds = time.perf_counter() - start
    before = scores(json.loads(target.read_text()))
    record = {"kills": 0, "intact": 0, "torn": 0}
    for _ in range(3 * kills):
        if record["kills"] == kills:
            break
        killed, _ = run(args, work, rng.uniform(0.5, seconds))
        record["kills"] += killed
        try:
            ok = scores(json.loads(target.read_text())) == before
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        record["intact" if ok else "torn"] += 1
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60, help="kill -9 in all (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "faults.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from elman.files import write_json
    from elman.provenance import command_line, provenance

    rng = random.Random(args.seed)
    train_kills = args.kills // 2
    other = args.kills - train_kills
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("ELMAN_DATA", str(work))
        train = train_trials(work, train_kills, rng)
        print(f"train: {train}", flush=True)
        arpa = arpa_trials(work, other // 2, rng)
        print(f"arpa: {arpa}", flush=True)
        results = results_trials(work, other - other // 2, rng)
        print(f"results: {results}", flush=True)
    flips_file = ROOT / "benchmarks" / "results" / "faults_checkpoint.json"
    record = {
        "benchmark": "faults",
        "kills": train["kills"] + arpa["kills"] + results["kills"],
        "train": train,
        "arpa": arpa,
        "results": results,
        "files_lost_or_corrupted": len(train["problems"]) + arpa["torn"] + results["torn"],
        "resumes_not_exact": train["runs"] - train["exact"],
        "bit_flips": json.loads(flips_file.read_text()) if flips_file.exists() else None,
        **provenance(command=command_line(prog="python benchmarks/faults.py")),
    }
    write_json(args.out, record)
    print(
        f"{record['kills']} kills: {record['files_lost_or_corrupted']} files lost or corrupted, "
        f"{record['resumes_not_exact']} resumes not exact; wrote {args.out}"
    )
    return 0 if not record["files_lost_or_corrupted"] and not record["resumes_not_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
