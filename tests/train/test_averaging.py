"""Checkpoint averaging: the mean of one run's weights in float64, refused across models, and a
checkpoint that loads and evaluates but cannot be resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elman.errors import ElmanError
from elman.tasks.loading import load
from elman.tasks.training import train
from elman.train.averaging import AVERAGED, average_checkpoints, average_weights, last_epochs
from elman.train.checkpoint import load_checkpoint, save_checkpoint
from train.lmtoy import write_corpus, write_recipe


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny LM run of 3 epochs keeping every epoch's checkpoint."""
    root = tmp_path_factory.mktemp("averaging")
    recipe = write_recipe(root / "tiny.toml", write_corpus(root / "corpus"))
    train(recipe, out=root / "run", overrides=["train.epochs=3", "train.keep_epochs=3"])
    return root / "run"


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_the_average_of_a_checkpoint_with_itself_is_itself(run):
    avg = average_weights([run / "epoch2.pt", run / "epoch2.pt"])
    own = weights(run / "epoch2.pt")
    assert avg["model"].keys() == own.keys()
    assert all(torch.equal(avg["model"][k], own[k]) for k in own)


def test_the_average_of_two_is_their_elementwise_mean(run, tmp_path):
    out = average_checkpoints([run / "epoch1.pt", run / "epoch3.pt"], tmp_path / "avg.pt")
    a, b, avg = weights(run / "epoch1.pt"), weights(run / "epoch3.pt"), weights(out)
    for name, tensor in avg.items():
        assert tensor.dtype == a[name].dtype
        torch.testing.assert_close(tensor, (a[name] + b[name]) / 2)
    first = load_checkpoint(run / "epoch1.pt")
    payload = load_checkpoint(out)  # the checksum verifies
    assert payload["recipe"] == first["recipe"] and payload["vocab"] == first["vocab"]
    assert payload["task"] == "lm" and payload["level"] == first["level"]
    assert payload[AVERAGED] == {
        "from": [str(run / "epoch1.pt"), str(run / "epoch3.pt")],
        "count": 2,
    }
    assert not {"optimizer", "trainer", "rng", "carry"} & set(payload)


def fake(path: Path, model: dict[str, torch.Tensor], **changes) -> Path:
    """A checkpoint of made-up weights (averaging reads no model, only its entries)."""
    payload = {"task": "lm", "recipe": {"model": {"hidden_size": 8}}, "vocab": {"words": ["a"]},
               "model": model, **changes}  # fmt: skip
    return save_checkpoint(payload, path)


def test_floats_are_summed_in_float64_and_integers_taken_from_the_last(tmp_path):
    w = torch.tensor([1.0, 2048.0], dtype=torch.float16)
    ws = [w, w, w + 2]
    paths = [fake(tmp_path / f"{k}.pt", {"w": ws[k], "n": torch.tensor([k])}) for k in range(3)]
    avg = average_weights(paths)["model"]
    assert avg["n"].tolist() == [2] and avg["n"].dtype == torch.int64  # the last one's
    expected = (ws[0].double() + ws[1].double() + ws[2].double()) / 3  # [5/3, 6146/3]
    assert avg["w"].dtype == torch.float16 and torch.equal(avg["w"], expected.half())


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"task": "nplm"}, "task"),
        ({"vocab": {"words": ["b"]}}, "vocab"),
        ({"recipe": {"model": {"hidden_size": 16}}}, "model.hidden_size (8 vs 16)"),
        ({"model": {"w": torch.zeros(3)}}, "weight w (3,) torch.float32"),
        ({"model": {"v": torch.zeros(2)}}, "weight names"),
    ],
)
def test_checkpoints_of_another_model_are_refused_in_one_line(tmp_path, changes, named):
    one = fake(tmp_path / "one.pt", {"w": torch.zeros(2)})
    other = fake(tmp_path / "other.pt", changes.pop("model", {"w": torch.ones(2)}), **changes)
    with pytest.raises(ElmanError) as err:
        average_weights([one, one, other])
    message = str(err.value)
    assert "\n" not in message and named in message
    assert message.startswith(f"{other} is not the same model as {one}: it differs in")


def test_last_epochs_are_the_newest_in_number_order(tmp_path):
    for n in (1, 2, 9, 10):
        (tmp_path / f"epoch{n}.pt").write_bytes(b"")
    (tmp_path / "epochs.pt").write_bytes(b"")
    assert [p.name for p in last_epochs(tmp_path, 3)] == ["epoch2.pt", "epoch9.pt", "epoch10.pt"]
    with pytest.raises(ElmanError, match=r"holds 4 epoch checkpoint\(s\).*train.keep_epochs=5"):
        last_epochs(tmp_path, 5)
    with pytest.raises(ElmanError, match="is not a run folder"):
        last_epochs(tmp_path / "none", 1)


def test_an_average_loads_and_evaluates_but_is_not_resumed(run, tmp_path):
    out = average_checkpoints(last_epochs(run, 2), tmp_path / "avg.pt")
    metrics = load(out, "cpu").evaluate("test")
    assert metrics["ppl"] > 1
    with pytest.raises(ElmanError, match="is an average of 2 checkpoints .* no optimiser"):
        train(resume=out)
