"""Damaged checkpoints: every bit flip, truncation or 0xFF run is refused in one line or loads
exactly the original content; none loads different weights, vocabulary or recipe, none gives a
traceback. The flip/classify logic is benchmarks/faults_checkpoint.py's (which records the
1,000-flip figures); here a fast subset runs in CI and the full run is marked slow.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from faults.bench import benchmark

Fault = benchmark.Fault
classify, damage_and_classify = benchmark.classify, benchmark.damage_and_classify
faults, fingerprint = benchmark.faults, benchmark.fingerprint


def assert_nothing_silent(report, at_least_refused: int) -> None:
    for kind, counts in report.counts.items():
        assert counts["silent"] == 0 and counts["traceback"] == 0, (kind, counts, report.bad)
    assert sum(c["refused"] for c in report.counts.values()) >= at_least_refused


def test_a_hundred_flips_spread_over_a_checkpoint_truncations_and_ff_runs(checkpoints, tmp_path):
    ck = checkpoints["lm"]
    damage = faults(ck.stat().st_size, flips=100, seed=0, truncations=10, runs=10)
    report = damage_and_classify(ck, damage, tmp_path / "x.pt")
    assert_nothing_silent(report, at_least_refused=90)
    assert report.totals("truncate")["refused"] == 10  # a truncated zip never loads
    assert report.reasons["checksum"] > 0  # flips in the tensors' bytes still unpickle


def test_flips_in_the_sentencepiece_model_bytes_fail_the_checksum(checkpoints, tmp_path):
    ck = checkpoints["translation"]
    data = ck.read_bytes()
    proto = torch.load(ck, weights_only=True)["vocab"]["src"]
    # torch.save pickles with protocol 2, which writes bytes as their latin-1 text in UTF-8
    stored = proto.decode("latin-1").encode("utf-8")
    start = data.find(stored)
    assert start > 0
    rng = random.Random(1)
    positions = sorted(rng.sample(range(start, start + len(stored)), 30))
    report = damage_and_classify(
        ck, [Fault("flip", p, rng.randrange(8)) for p in positions], tmp_path / "x.pt"
    )
    assert report.totals("flip")["refused"] == 30
    # a flip that leaves valid UTF-8 unpickles to other model bytes: only the checksum sees it
    assert report.reasons["checksum"] >= 10


def test_eight_bytes_of_ff_in_the_weights_are_refused_not_scored_as_nan(checkpoints, tmp_path):
    ck = checkpoints["lm"]
    data = ck.read_bytes()
    weight = torch.load(ck, weights_only=True)["model"]["decoder.weight"]
    start = data.find(weight.numpy().tobytes()[:32])
    assert start > 0
    bad = tmp_path / "best.pt"
    outcome, message = classify_one(ck, Fault("ff", start + 16, 8), bad)
    assert outcome == "refused"
    assert message == (
        f"checkpoint {bad} fails its checksum (corrupted); use last.pt/best.pt or retrain"
    )


def classify_one(ck: Path, fault: Fault, scratch: Path) -> tuple[str, str]:
    scratch.write_bytes(fault.apply(ck.read_bytes()))
    return classify(scratch, fingerprint(ck))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["lm", "nplm", "tagger", "translation"])
def test_a_thousand_flips_load_nothing_silently(checkpoints, tmp_path, task):
    ck = checkpoints[task]
    report = damage_and_classify(ck, faults(ck.stat().st_size, 1000, seed=0), tmp_path / "x.pt")
    assert_nothing_silent(report, at_least_refused=800)
