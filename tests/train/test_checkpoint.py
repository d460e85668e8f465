"""Checkpoints: atomic writes, checksums, safe loads, clear errors naming the file, complete
content."""

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
    assert loaded["format"] == "elman-checkpoint" and loaded["version"] == 2
    assert loaded["checksum"] == checkpoint.content_digest(loaded)
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
    with pytest.raises(ElmanError, match="disk full"):  # one line naming the file
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


# ------------------------------------------------------------------ checksums
def resave_with_the_old_checksum(path: Path, change) -> None:
    """Rewrite ``path`` with ``change`` applied to its content but its old checksum kept, as a
    flipped bit that still unpickles would leave it."""
    content = torch.load(path, weights_only=True)
    change(content)
    torch.save(content, path)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["model"]["w"].view(-1)[4].add_(1e-6),  # one weight, slightly
        lambda c: c.update(note="y"),  # a plain value
        lambda c: c.update(extra=1),  # an entry added
        lambda c: c.pop("note"),  # an entry removed
        lambda c: c.update(version=1),  # an older format claimed
        lambda c: c.update(checksum="0" * 64),
        lambda c: c.pop("checksum"),
    ],
    ids=["weight", "value", "added", "removed", "version", "checksum", "no-checksum"],
)
def test_changed_content_fails_its_checksum(tmp_path, change):
    path = save_checkpoint(payload(1.0), tmp_path / "best.pt")
    resave_with_the_old_checksum(path, change)
    with pytest.raises(ElmanError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    if "checksum" in message:
        assert message == (
            f"checkpoint {path} fails its checksum (corrupted); use last.pt/best.pt or retrain"
        )


def test_the_digest_is_canonical():
    digest = checkpoint.content_digest
    t = torch.arange(6.0).reshape(2, 3)
    assert digest({"a": 1, "b": t}) == digest({"b": t.clone(), "a": 1})  # key order
    assert digest({"a": t.t().contiguous()}) == digest({"a": t.t()})  # layout in memory
    different = [
        {"a": 1},
        {"a": 1.0},
        {"a": True},
        {"a": "1"},
        {"a": b"1"},
        {"a": [1]},
        {"a": (1,)},
        {"a": {1: 1}},
        {"a": {"1": 1}},
        {"a": None},
        {"a": torch.tensor([1.0])},
        {"a": torch.tensor([1.0], dtype=torch.float64)},
        {"a": torch.tensor([[1.0]])},
        {"a": float("inf")},
        {"a": -0.0},
        {"a": 0.0},
    ]
    assert len({digest(d) for d in different}) == len(different)
    with pytest.raises(checkpoint.NotPlain):
        digest({"a": object()})


def test_a_checkpoint_without_checksum_from_before_version_2_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "elman-checkpoint", "version": 1, "model": {"w": torch.ones(2)}}, path)
    with pytest.warns(UserWarning, match="no checksum .*format version 1"):
        payload = load_checkpoint(path)
    assert torch.equal(payload["model"]["w"], torch.ones(2))


@pytest.mark.parametrize("version", [0, -1, "2", 2.0, True, None])
def test_a_broken_format_version_is_refused(tmp_path, version):
    path = tmp_path / "odd.pt"
    torch.save({"format": "elman-checkpoint", "version": version}, path)
    with pytest.raises(ElmanError, match="no valid format version"):
        load_checkpoint(path)


def test_the_save_goes_through_the_atomic_writer(tmp_path, monkeypatch):
    from elman import files

    opened = []
    real = files.atomic_open

    def spy(path, mode="w", **kw):
        opened.append((Path(path).name, mode))
        return real(path, mode, **kw)

    monkeypatch.setattr(checkpoint, "atomic_open", spy)
    save_checkpoint(payload(1.0), tmp_path / "last.pt")
    assert opened == [("last.pt", "wb")]


# ------------------------------------------------------------------ weights
class Two(torch.nn.Module):
    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.a = torch.nn.Linear(n, n)


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    state = Two().state_dict()
    state["a.bias"][1] = float("nan")
    path = save_checkpoint({"model": state}, tmp_path / "best.pt")
    ck = load_checkpoint(path)  # the file itself is intact
    for load in (
        lambda: checkpoint.load_weights(Two(), ck),
        lambda: checkpoint.build_checked(Two, ck),
    ):
        with pytest.raises(ElmanError) as err:
            load()
        message = str(err.value)
        assert str(path) in message and "a.bias" in message and "non-finite" in message
        assert "\n" not in message


def test_shapes_are_compared_on_the_meta_device_before_allocating(tmp_path, monkeypatch):
    path = save_checkpoint({"model": Two(3).state_dict()}, tmp_path / "best.pt")
    ck = load_checkpoint(path)
    assert torch.equal(checkpoint.build_checked(Two, ck).a.weight, ck["model"]["a.weight"])
    built = []

    def huge() -> Two:
        built.append(torch.empty(0).device.type)
        return Two(10**7)  # 4e14 bytes of weights, were it allocated

    with pytest.raises(ElmanError) as err:
        checkpoint.build_checked(huge, ck)
    assert built == ["meta"]  # never built for real
    assert str(err.value) == (
        f"checkpoint {path}: its weights do not fit its recipe's model (a.weight is (3, 3) in "
        "the file, (10000000, 10000000) by the recipe; 1 more); the file is damaged or altered"
    )
    ck["model"]["b"] = ck["model"].pop("a.bias")
    with pytest.raises(ElmanError, match=r"a.bias is missing; 1 more"):
        checkpoint.build_checked(Two, ck)
    ck["model"]["a.bias"] = "not a tensor"
    with pytest.raises(ElmanError, match="model entry 'a.bias' is a str, not a tensor"):
        checkpoint.build_checked(Two, ck)
