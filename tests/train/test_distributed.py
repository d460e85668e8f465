"""Two CPU processes (torchrun, gloo on loopback) train what one process trains.

The tiny LM recipe (B = 4 columns) runs 3 steps under ``torchrun --nproc-per-node 2``, stops
mid-epoch, and resumes to the end; one process does the same. The weights must agree (up to
float summation order), the two ranks must hold the same weights, and only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from elman.data.batching import BPTTStream
from elman.errors import ElmanError
from elman.train import distributed
from elman.train.checkpoint import load_checkpoint
from elman.train.run import train

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

# torchrun runs this script in each process: elman's CLI, plus a dump of the rank's weights
# after training (only rank 0 writes checkpoints, so the others are otherwise invisible).
WORKER = """\
import os, sys
import torch
from elman.train import trainer

fit = trainer.Trainer.fit
dump = sys.argv[1]

def fit_and_dump(self):
    summary = fit(self)
    state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
    torch.save(state, os.path.join(dump, f"rank{os.environ['RANK']}.pt"))
    return summary

trainer.Trainer.fit = fit_and_dump
from elman.cli import main
sys.argv = ["elman"] + sys.argv[2:]
raise SystemExit(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, dump: Path, *args: str) -> subprocess.CompletedProcess:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    dump.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    cmd += [str(worker), str(dump), "train", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def test_two_processes_train_what_one_process_trains(tmp_path: Path, recipe: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    train(recipe, overrides=["train.max_steps=3"], out=one)
    one_at_3 = load_checkpoint(one / "last.pt")["model"]
    train(resume=one)
    one_end = load_checkpoint(one / "last.pt")["model"]

    dump = tmp_path / "dump"
    out = torchrun(
        tmp_path, dump / "a", str(recipe), "--out", str(two), "--set", "train.max_steps=3"
    )
    assert out.stdout.count("stopped after step 3") == 1  # rank 0 alone prints
    two_at_3 = load_checkpoint(two / "last.pt")["model"]
    assert_close(two_at_3, one_at_3, atol=1e-5)
    assert_close(torch.load(dump / "a" / "rank1.pt"), torch.load(dump / "a" / "rank0.pt"), 0)

    # mid-epoch resume: every rank takes its columns of the gathered carried state back
    torchrun(tmp_path, dump / "b", "--resume", str(two))
    assert_close(load_checkpoint(two / "last.pt")["model"], one_end, atol=1e-4)
    assert_close(torch.load(dump / "b" / "rank1.pt"), torch.load(dump / "b" / "rank0.pt"), 0)

    # one writer: the same records as one process, a single results.json, no stray files
    def records(run: Path) -> list[tuple]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [(r["kind"], r["epoch"], r["step"]) for r in map(json.loads, lines)]

    assert records(two) == records(one)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    valid_one = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    valid_two = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(valid_one, valid_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)  # global-batch train loss


def test_columns_are_the_one_process_layout() -> None:
    stream = BPTTStream(torch.arange(1, 24), batch_size=4, bptt=3, start_id=0)
    left, right = stream.columns(0, 2), stream.columns(2, 4)
    assert torch.equal(torch.cat([left.inputs, right.inputs], dim=1), stream.inputs)
    assert torch.equal(torch.cat([left.targets, right.targets], dim=1), stream.targets)
    assert len(left) == len(right) == len(stream)
    for i in range(len(stream)):
        assert left.batch(i).num_tokens + right.batch(i).num_tokens == stream.batch(i).num_tokens
    assert left.total_tokens + right.total_tokens == stream.total_tokens


def test_batch_size_must_split_over_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = BPTTStream(torch.arange(1, 24), batch_size=3, bptt=3, start_id=0)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    with pytest.raises(ElmanError, match=r"data.batch_size = 3 .* world size 2"):
        distributed.shard_columns(stream)


def test_one_process_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env("cpu")
    assert not distributed.active() and distributed.is_main()
    stream = BPTTStream(torch.arange(1, 24), batch_size=3, bptt=3, start_id=0)
    assert distributed.shard_columns(stream) is stream
    assert distributed.broadcast_float(1.5) == 1.5
