"""Checkpoints: atomic writes, safe loads, clear errors naming the file, complete content."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from elman.errors import ElmanError
from elman.tasks.training import train
from elman.train import checkpoint
from elman.train.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint


def payload(value: float) -> dict:
    return {"task": "lm", "model": {"w": torch.full((3, 3), value)}, "note": "x"}


def test_save_load_round_trip_leaves_no_temporary_file(tmp_path):
    path = save_checkpoint(payload(1.0), tmp_path / "run" / "last.pt")
    save_checkpoint(payload(2.0), path)  # replaces the old one
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
    loaded = load_checkpoint(path)
    assert loaded["format"] == "elman-checkpoint" and loaded["version"] == 1
    assert torch.equal(loaded["model"]["w"], torch.full((3, 3), 2.0))
    assert loaded["path"] == str(path)


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(payload(1.0), tmp_path / "last.pt")
    before = path.read_bytes()
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half a file written, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(payload(2.0), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temporary file is gone
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((3, 3), 1.0))


def test_load_uses_weights_only_and_never_runs_code(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "load", spy)
    path = save_checkpoint(payload(1.0), tmp_path / "a.pt")
    load_checkpoint(path)
    assert calls == [True]

    # A pickle that would call a function when unpickled fully.
    evil = tmp_path / "evil.pt"
    torch.save({"format": "elman-checkpoint", "version": 1, "x": _Evil()}, evil)
    _Evil.ran = False
    with pytest.raises(ElmanError, match=str(evil)):
        load_checkpoint(evil)
    assert not _Evil.ran


def _ran() -> None:
    _Evil.ran = True


class _Evil:
    ran = False

    def __reduce__(self):
        return (_ran, ())


def test_truncated_random_and_foreign_files_name_the_file(tmp_path):
    good = save_checkpoint(payload(1.0), tmp_path / "good.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(random.Random(0).randbytes(4096))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), tensor)
    for path in (truncated, noise, empty, foreign, tensor):
        with pytest.raises(ElmanError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert str(path) in message and "\n" not in message
        assert "PyTorch 2.6" not in message  # no cut-off page of torch's advice
    with pytest.raises(ElmanError, match="not an elman checkpoint"):
        load_checkpoint(foreign)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": "elman-checkpoint", "version": 99}, path)
    with pytest.raises(ElmanError, match="upgrade elman"):
        load_checkpoint(path)


def test_resolve_checkpoint_prefers_best_in_a_run_folder(tmp_path):
    with pytest.raises(ElmanError, match="not found"):
        resolve_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ElmanError, match="holds no best.pt or last.pt"):
        resolve_checkpoint(tmp_path)
    save_checkpoint(payload(1.0), tmp_path / "last.pt")
    assert resolve_checkpoint(tmp_path) == tmp_path / "last.pt"
    save_checkpoint(payload(1.0), tmp_path / "best.pt")
    assert resolve_checkpoint(tmp_path) == tmp_path / "best.pt"


def test_a_trained_checkpoint_holds_everything_to_continue(recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=3", "train.optimizer=adam"], out=run_dir)
    ck = load_checkpoint(run_dir / "last.pt")
    assert ck["task"] == "lm"
    assert ck["recipe"]["model"]["hidden_size"] == 8  # the config
    assert ck["recipe"]["train"]["max_steps"] == 3
    assert "<eos>" in ck["vocab"]["itos"]  # the vocabulary
    assert set(ck["model"]) >= {"embedding.weight", "decoder.weight", "decoder.bias"}
    assert ck["optimizer"]["state"]  # Adam moments
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    t = ck["trainer"]
    assert (t["epoch"], t["step_in_epoch"], t["global_step"]) == (1, 3, 3)  # the data position
    assert "lr" in t["schedule"]
    h, c = ck["carry"]  # the LSTM state carried between BPTT batches: (L, B, H)
    assert h.shape == c.shape == (2, 4, 8)
