"""Checkpoint fault injection: random bit flips, truncations and 0xFF runs of real checkpoints.

    .venv/bin/python benchmarks/faults_checkpoint.py [--flips 1000] [--seed 0]
        [--tasks lm,nplm,tagger,translation] [--out benchmarks/results/faults_checkpoint.json]

A tiny model of each task is trained (the test corpora of tests/train/: a few seconds on one
CPU thread) and its ``last.pt`` damaged in memory, one fault at a time, written to a scratch
file and given to ``elman.load`` (what ``elman eval``, ``generate``, ``tag`` and ``translate``
call). Each outcome is one of:

* ``refused``: an ``ElmanError`` of one line (the CLI prints it and exits 2);
* ``identical``: it loaded, and what it holds is byte for byte the original's: the rebuilt
  model's weights, vocabulary, recipe and level, and the checkpoint's whole content (optimiser,
  trainer and RNG state included). A flip in bytes that do not change what is read changes
  nothing: zip alignment padding, a local header's copy of what the central directory holds,
  the pickle's memo number of an object never fetched again (1,000 flips of the LM: 150, of
  which 39 in the central directory's unused fields, 32 in data.pkl, 31 in padding);
* ``silent``: it loaded with different content -- the failure this guards against;
* ``traceback``: any other exception, or an error message of more than one line.

Faults: ``--flips`` single-bit flips at positions spread evenly over the file (one random byte
in each of ``--flips`` equal stretches, a random bit of it), 20 truncations to random lengths,
and 20 runs of 8 bytes of 0xFF at random places. Everything is seeded. ``tests/faults/``
runs a fast subset in CI (:func:`damage_and_classify` is shared); this script records the
full run in ``--out`` with its command, commit and device.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("refused", "identical", "silent", "traceback")
TASKS = ("lm", "nplm", "tagger", "translation")

NPLM_RECIPE = """\
[recipe]
name = "tiny-nplm"
task = "nplm"
aim = "a test"

[data]
dataset = "{corpus}"
batch_size = 16

[model]
context_size = 3
embedding_dim = 6
hidden_size = 8

[train]
epochs = 1
optimizer = "adam"
lr = 0.01
device = "cpu"
threads = 1
progress = false
"""


# ------------------------------------------------------------------ tiny checkpoints
def tiny_checkpoint(task: str, folder: Path, steps: int = 3) -> Path:
    """Train a tiny ``task`` model for ``steps`` steps in ``folder``; its ``last.pt``.

    Uses the toy corpora and recipes of ``tests/train`` (lmtoy, tagtoy, mttoy).
    """
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from elman.tasks.training import train
    from train.lmtoy import write_corpus, write_recipe
    from train.mttoy import write_parallel_corpus, write_translation_recipe
    from train.tagtoy import write_tagged_corpus, write_tagger_recipe

    folder.mkdir(parents=True, exist_ok=True)
    if task == "lm":
        recipe = write_recipe(folder / "lm.toml", write_corpus(folder / "corpus"))
    elif task == "nplm":
        recipe = folder / "nplm.toml"
        recipe.write_text(NPLM_RECIPE.format(corpus=write_corpus(folder / "corpus").as_posix()))
    elif task == "tagger":
        recipe = write_tagger_recipe(folder / "tagger.toml", write_tagged_corpus(folder / "ud"))
    elif task == "translation":
        corpus = write_parallel_corpus(folder / "mt", sizes=(80, 8, 8))
        recipe = write_translation_recipe(folder / "mt.toml", corpus)
    else:
        raise ValueError(f"task {task!r} unknown; valid: {', '.join(TASKS)}")
    run = folder / f"run-{task}"
    train(recipe, out=run, overrides=[f"train.max_steps={steps}"], command="faults_checkpoint")
    return run / "last.pt"


# ------------------------------------------------------------------ faults
@dataclass(frozen=True)
class Fault:
    """One way to damage a file: ``flip`` (bit ``arg`` of byte ``pos``), ``truncate`` (keep
    ``pos`` bytes) or ``ff`` (``arg`` bytes of 0xFF from ``pos``)."""

    kind: str
    pos: int
    arg: int = 0

    def apply(self, data: bytes) -> bytes:
        if self.kind == "flip":
            out = bytearray(data)
            out[self.pos] ^= 1 << self.arg
            return bytes(out)
        if self.kind == "truncate":
            return data[: self.pos]
        if self.kind == "ff":
            end = min(len(data), self.pos + self.arg)
            return data[: self.pos] + b"\xff" * (end - self.pos) + data[end:]
        raise ValueError(f"fault {self.kind!r} unknown")


def spread_flips(size: int, n: int, rng: random.Random) -> Iterator[Fault]:
    """``n`` single-bit flips, one in each of ``n`` equal stretches of a ``size``-byte file."""
    for k in range(n):
        lo, hi = k * size // n, max(k * size // n + 1, (k + 1) * size // n)
        yield Fault("flip", rng.randrange(lo, min(hi, size)), rng.randrange(8))


def faults(size: int, flips: int, seed: int, truncations: int = 20, runs: int = 20) -> list[Fault]:
    """The seeded faults of one file: flips spread over it, truncations, 8-byte 0xFF runs."""
    rng = random.Random(seed)
    out = list(spread_flips(size, flips, rng))
    out += [Fault("truncate", rng.randrange(size)) for _ in range(truncations)]
    out += [Fault("ff", rng.randrange(size - 8), 8) for _ in range(runs)]
    return out


# ------------------------------------------------------------------ classifying a load
def fingerprint(path: Path) -> tuple[str, str]:
    """What ``elman.load`` rebuilds from ``path`` (weights, vocabulary, recipe, level) and the
    checkpoint's whole content, each as a SHA-256 of its canonical serialisation."""
    import elman
    from elman.train.checkpoint import content_digest, load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a version-1 checkpoint's "no checksum" warning
        loaded = elman.load(path, "cpu")
        content = content_digest(load_checkpoint(path))
    rebuilt = content_digest(
        {
            "task": loaded.task.name,
            "model": loaded.model.state_dict(),
            "vocab": loaded.vocab.to_dict(),
            "recipe": loaded.recipe.raw,
            "level": loaded.level,
        }
    )
    return rebuilt, content


def classify(path: Path, original: tuple[str, str]) -> tuple[str, str]:
    """The outcome of loading ``path`` (module docstring) and a one-line detail."""
    from elman.errors import ElmanError

    try:
        damaged = fingerprint(path)
    except ElmanError as err:
        message = str(err)
        return ("refused" if "\n" not in message else "traceback"), message
    except Exception as err:  # what the suite exists to catch: report, never raise
        return (
            "traceback",
            f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}",
        )
    if damaged == original:
        return "identical", ""
    return "silent", "loaded with content different from the original"


REASONS = {  # a phrase of each refusal of elman.train.checkpoint -> a short name
    "fails its checksum": "checksum",
    "truncated, corrupt or not an elman checkpoint": "unreadable",
    "is not an elman checkpoint": "header",
    "format version": "version",
}


def reason(message: str) -> str:
    """Which check refused a file, from its one-line message."""
    return next((name for phrase, name in REASONS.items() if phrase in message), "other")


@dataclass
class Report:
    """Counts of outcomes per fault kind, which check refused, and examples of the bad ones."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    bad: list[dict[str, Any]] = field(default_factory=list)

    def add(self, fault: Fault, outcome: str, detail: str) -> None:
        self.counts.setdefault(fault.kind, Counter())[outcome] += 1
        if outcome == "refused":
            self.reasons[reason(detail)] += 1
        if outcome in ("silent", "traceback"):
            self.bad.append({"fault": vars(fault), "outcome": outcome, "detail": detail})

    def totals(self, kind: str) -> dict[str, int]:
        return {o: self.counts.get(kind, Counter())[o] for o in OUTCOMES}


def damage_and_classify(checkpoint: Path, faults_: list[Fault], scratch: Path) -> Report:
    """Apply each fault to a copy of ``checkpoint`` at ``scratch`` and classify its load."""
    data = checkpoint.read_bytes()
    original = fingerprint(checkpoint)
    report = Report()
    for fault in faults_:
        scratch.write_bytes(fault.apply(data))
        outcome, detail = classify(scratch, original)
        report.add(fault, outcome, detail)
    return report


# ------------------------------------------------------------------ the benchmark
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=1000, help="bit flips per checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/faults_checkpoint.json"))
    args = ap.parse_args()

    import torch

    from elman.files import write_json
    from elman.provenance import command_line, provenance

    torch.set_num_threads(1)
    record: dict[str, Any] = {
        **provenance("cpu", command_line(prog="python benchmarks/faults_checkpoint.py")),
        "flips": args.flips,
        "seed": args.seed,
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            start = time.perf_counter()
            ck = tiny_checkpoint(task, Path(tmp) / task)
            size = ck.stat().st_size
            report = damage_and_classify(
                ck, faults(size, args.flips, args.seed), Path(tmp) / "x.pt"
            )
            record["tasks"][task] = {
                "bytes": size,
                **{kind: report.totals(kind) for kind in ("flip", "truncate", "ff")},
                "refused_by": dict(report.reasons.most_common()),
                "bad": report.bad[:20],
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(task, size, "bytes", {k: report.totals(k) for k in ("flip", "truncate", "ff")})
            print("  refused by", dict(report.reasons.most_common()))
    write_json(args.out, record)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
