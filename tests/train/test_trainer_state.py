"""The trainer's resumable state: one dataclass, the checkpoint's ``trainer`` entry unchanged.

Checkpoints written before ``TrainerState`` existed hold the same keys; they must load, and
what the trainer writes must keep those keys (``history``, ``global_step``, ``sessions`` are
read by other code and by users).
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from elman.train.trainer import TrainConfig, Trainer, TrainerState

# the "trainer" entry of a checkpoint, key for key, as elman wrote it before TrainerState
TRAINER_KEYS = {
    "epoch",
    "step_in_epoch",
    "global_step",
    "best_valid",
    "bad_epochs",
    "epoch_loss",
    "epoch_tokens",
    "clip_steps",
    "schedule",
    "history",
    "sessions",
    "finished",
    "wall_time",
    "cpu_time",
    "average",
    "averaging",
    "finetune_from",
}


class Toy(nn.Module):
    """A linear classifier with the trainer's contract, ``loss(batch, state)``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def loss(self, batch, state):
        x, y = batch
        return F.cross_entropy(self.linear(x), y, reduction="sum"), y.numel(), state


class Batches:
    def __init__(self, n: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(5, 3, generator=g), torch.arange(5) % 2) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.batches)

    def iter_from(self, i: int):
        return iter(self.batches[i:])


def toy_trainer(tmp_path, **config) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(device="cpu", progress=False, lr=0.1, **config)
    return Trainer(Toy(), cfg, Batches(), lambda m: {"loss": 1.0}, tmp_path, meta={})


def todays_entry(trainer: Trainer) -> dict:
    """A ``trainer`` entry built by hand in the format checkpoints have today."""
    schedule = trainer.schedule.state_dict()
    schedule["lr"] = 0.025
    return {
        "epoch": 3,
        "step_in_epoch": 2,
        "global_step": 10,
        "best_valid": 0.75,
        "bad_epochs": 1,
        "epoch_loss": 12.5,
        "epoch_tokens": 10,
        "clip_steps": 2,
        "schedule": schedule,
        "history": [{"kind": "valid", "epoch": 1, "loss": 0.75}],
        "sessions": [{"command": "elman train x.toml", "commit": "abc", "from_step": 0}],
        "finished": False,
        "wall_time": 12.0,
        "cpu_time": 9.5,
        "average": None,
        "averaging": True,
        "finetune_from": 0,
    }


def test_the_state_round_trips_through_a_dict() -> None:
    state = TrainerState(
        epoch=2,
        step_in_epoch=5,
        global_step=17,
        best_valid=1.25,
        history=[{"kind": "valid", "loss": 1.25}],
        sessions=[{"command": "elman train", "from_step": 0}],
        wall_time=3.5,
        averaging=True,
        finetune_from=2,
    )
    d = state.to_dict()
    assert set(d) == TRAINER_KEYS - {"schedule", "average"}
    assert TrainerState.from_dict(d) == state
    assert TrainerState.from_dict(json.loads(json.dumps(d))) == state


def test_a_checkpoint_entry_in_todays_format_loads_and_saves_unchanged(tmp_path) -> None:
    trainer = toy_trainer(tmp_path)
    payload = trainer.state_dict(None)
    assert set(payload["trainer"]) == TRAINER_KEYS
    entry = todays_entry(trainer)
    trainer.load_state_dict({**payload, "trainer": entry})
    assert (trainer.epoch, trainer.global_step, trainer.best_valid) == (3, 10, 0.75)
    assert trainer.history == entry["history"] and trainer.sessions == entry["sessions"]
    assert trainer.state.step_in_epoch == 2 and trainer.state.averaging
    assert trainer.optimizer.param_groups[0]["lr"] == 0.025  # the schedule's rate, restored
    # before fit() starts its clock, the saved times are the loaded ones: an exact round trip
    assert trainer.state_dict(None)["trainer"] == entry


def test_an_older_entry_without_the_later_keys_takes_the_defaults(tmp_path) -> None:
    trainer = toy_trainer(tmp_path, average_start=1)
    entry = todays_entry(trainer)
    for key in ("sessions", "wall_time", "cpu_time", "averaging"):
        del entry[key]
    trainer.load_state_dict({**trainer.state_dict(None), "trainer": entry})
    assert trainer.sessions == [] and trainer.elapsed() == 0.0
    assert trainer.state.averaging  # average_start = 1: averaging from the first step


def test_fit_keeps_its_summary_and_metrics_records(tmp_path) -> None:
    trainer = toy_trainer(tmp_path, epochs=2, clip_norm=1.0, log_every=3)
    summary = trainer.fit()
    assert set(summary) == {
        "interrupted",
        "stopped_early",
        "epochs",
        "global_step",
        "best_valid_loss",
        "wall_time",
        "cpu_time",
        "history",
    }
    assert summary["global_step"] == trainer.global_step == 8 and summary["epochs"] == 2
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_keys = ["kind", "epoch", "step", "loss", "ppl", "lr", "tokens_per_s"]
    train_keys += ["grad_norm", "clip_fraction"]
    # a window every 3 steps and one at each epoch's end: steps 3, 4 | 6, 8
    assert [r["step"] for r in records if r["kind"] == "train"] == [3, 4, 6, 8]
    assert all(list(r) == train_keys for r in records if r["kind"] == "train")
    epoch_1 = [r for r in records if r["epoch"] == 1]
    # the epoch's training loss is the token-weighted mean of its windows (5 tokens a step)
    means = [r["loss"] for r in epoch_1 if r["kind"] == "train"]
    valid = next(r for r in epoch_1 if r["kind"] == "valid")
    assert math.isclose(valid["train_loss"], (3 * means[0] + means[1]) / 4, rel_tol=1e-12)


def test_a_checkpoint_of_the_loop_optimiser_resumes_fused(tmp_path) -> None:
    """Checkpoints written before the optimisers were fused hold fused = foreach = None: they
    load, keep their Adam moments and step count, and the resumed run steps fused."""
    from elman.train.checkpoint import load_checkpoint

    first = toy_trainer(tmp_path / "a", optimizer="adam")
    first.fit()
    payload = load_checkpoint(tmp_path / "a" / "last.pt")
    for group in payload["optimizer"]["param_groups"]:
        assert group["fused"]
        group["fused"] = group["foreach"] = None  # as the loop optimiser wrote it
    saved = {k: v.clone() for k, v in payload["optimizer"]["state"][0].items()}
    second = toy_trainer(tmp_path / "b", optimizer="adam")
    second.load_state_dict(payload)
    group = second.optimizer.param_groups[0]
    assert group["fused"] and group["foreach"] is None
    state = second.optimizer.state[group["params"][0]]
    assert torch.equal(state["exp_avg"], saved["exp_avg"])
    assert float(state["step"]) == float(saved["step"]) > 0
    for p in group["params"]:
        p.grad = torch.ones_like(p)
    second.optimizer.step()  # the fused kernel accepts the loaded state
    assert float(state["step"]) == float(saved["step"]) + 1
