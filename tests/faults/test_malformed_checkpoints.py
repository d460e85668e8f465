"""Malformed checkpoints and files that are not checkpoints: one line each through ``elman.load``
(what eval, generate, tag and translate call), naming the file; never a KeyError, TypeError or
traceback, and never an attempt to allocate what a crafted recipe asks for.

Most cases are *crafted*: a real checkpoint's content changed and saved again with
``save_checkpoint``, so the checksum is valid and only the checks behind it can refuse it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import elman
from elman.cli import main
from elman.errors import ElmanError
from elman.train.checkpoint import load_checkpoint, save_checkpoint

Change = Callable[[dict[str, Any]], Any]


def craft(original: Path, out: Path, change: Change) -> Path:
    """``original``'s content with ``change`` applied, saved (with a valid checksum) to ``out``."""
    content = load_checkpoint(original)
    for key in ("path", "format", "version", "checksum"):
        content.pop(key)
    change(content)
    return save_checkpoint(content, out)


def refusal(path: Path, *match: str) -> str:
    """The one-line ElmanError of loading ``path``; it names the file and each of ``match``."""
    with pytest.raises(ElmanError) as err:
        elman.load(path, "cpu")
    message = str(err.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for m in match:
        assert m in message, message
    return message


def setitem(*keys: str, value: Any) -> Change:
    def change(c: dict[str, Any]) -> None:
        node = c
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


def pop(key: str) -> Change:
    return lambda c: c.pop(key)


LM_CASES: dict[str, tuple[Change, str]] = {
    "no vocab": (pop("vocab"), "has no 'vocab' entry"),
    "no model": (pop("model"), "has no 'model' entry"),
    "no recipe": (pop("recipe"), "has no 'recipe' entry"),
    "no task": (pop("task"), "has no 'task' entry"),
    "recipe not a table": (setitem("recipe", value="lstm"), "'recipe' is a str, not a table"),
    "section not a table": (setitem("recipe", "model", value=3), "[model] must be a table"),
    "vocab a list": (setitem("vocab", value=["a"]), "'vocab' is a list, not a table"),
    "vocab without itos": (setitem("vocab", "itos", value=3), "vocabulary: expected"),
    "model a list": (setitem("model", value=[1]), "'model' is a list, not a table of weights"),
    "weight not a tensor": (
        setitem("model", "decoder.bias", value=[0.0]),
        "model entry 'decoder.bias' is a list, not a tensor",
    ),
    "task a number": (setitem("task", value=3), "'task' is a int, not a task name"),
    "task unknown": (setitem("task", value="ngram"), "task = 'ngram' unknown"),
    "level unknown": (setitem("level", value="byte"), "level 'byte' unknown"),
    "key of a wrong type": (setitem("recipe", "model", "hidden_size", value="8"), "expected int"),
    "unknown key": (setitem("recipe", "model", "hiden_size", value=8), "unknown key(s) hiden"),
    "negative init_range": (
        setitem("recipe", "model", "init_range", value=-0.1),
        "init_range = -0.1: must be a finite number > 0",
    ),
    "absurd hidden_size": (
        setitem("recipe", "model", "hidden_size", value=10**7),
        "hidden_size must be at least 1 and at most 65536, got 10000000",
    ),
    "hidden_size unlike the weights": (
        setitem("recipe", "model", "hidden_size", value=60_000),  # 58 GB of LSTM weights
        "its weights do not fit its recipe's model (recurrent.cells.0.weight_ih is (32, 8) in "
        "the file, (240000, 8) by the recipe",
    ),
    "weights renamed": (
        lambda c: c["model"].update(extra=c["model"].pop("decoder.bias")),
        "decoder.bias is missing",
    ),
}


@pytest.mark.parametrize("case", list(LM_CASES))
def test_a_malformed_lm_checkpoint_is_one_line(checkpoints, tmp_path, case):
    change, expected = LM_CASES[case]
    refusal(craft(checkpoints["lm"], tmp_path / "best.pt", change), expected)


@pytest.mark.parametrize(
    "task, weight", [("lm", "decoder.weight"), ("nplm", "hidden.weight"), ("tagger", None)]
)
def test_non_finite_weights_are_refused_naming_the_tensor(checkpoints, tmp_path, task, weight):
    content = load_checkpoint(checkpoints[task])
    weight = weight or next(k for k, v in content["model"].items() if v.is_floating_point())

    def poison(c: dict[str, Any]) -> None:
        c["model"][weight].view(-1)[0] = float("nan")

    path = craft(checkpoints[task], tmp_path / "best.pt", poison)
    refusal(path, f"weight {weight} holds 1 non-finite value(s)")


def test_non_finite_weights_exit_2_in_one_line_not_ppl_nan(checkpoints, tmp_path, capsys):
    def poison(c: dict[str, Any]) -> None:
        c["model"]["decoder.weight"].view(-1)[3] = float("inf")

    path = craft(checkpoints["lm"], tmp_path / "best.pt", poison)
    assert main(["eval", str(path), "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert "ppl" not in out and err.count("\n") == 1 and "non-finite" in err


TRANSLATION_CASES: dict[str, tuple[Change, str]] = {
    "garbage model bytes": (
        setitem("vocab", "src", value=b"\x0a\x00garbage"),
        "the sentencepiece model is malformed",
    ),
    "model without pieces": (setitem("vocab", "src", value=b"\x08\x01"), "unk is not defined"),
    "model as text": (setitem("vocab", "src", value="abc"), "holds no serialized model"),
    "kept piece out of range": (
        lambda c: c["vocab"]["tgt_keep"].append(10**6),
        "kept pieces must be distinct ids below",
    ),
    "kept pieces not a list": (setitem("vocab", "tgt_keep", value=3), "must be a list"),
    "no sentencepiece vocabulary": (
        setitem("vocab", "kind", value="words"),
        "holds no sentencepiece vocabulary",
    ),
}


@pytest.mark.parametrize("case", list(TRANSLATION_CASES))
def test_a_malformed_translation_vocabulary_is_one_line(checkpoints, tmp_path, case):
    change, expected = TRANSLATION_CASES[case]
    refusal(craft(checkpoints["translation"], tmp_path / "best.pt", change), expected)


def test_empty_sentencepiece_bytes_are_refused_not_loaded_as_an_empty_model():
    from elman.data.subword import SubwordVocab

    # (torch.save pickles b"" as a call of bytes(), which weights_only refuses to load: such a
    # checkpoint is already "not an elman checkpoint"; from_dict refuses it on its own too)
    with pytest.raises(ElmanError, match=r"malformed \(no bytes\)"):
        SubwordVocab.from_dict({"kind": "sentencepiece", "src": b"", "tgt": None})


def test_a_tagger_vocabulary_without_tags_is_one_line(checkpoints, tmp_path):
    path = craft(checkpoints["tagger"], tmp_path / "best.pt", lambda c: c["vocab"].pop("tags"))
    refusal(path, "tagger vocabulary: expected a dictionary of words, chars and tags")


@pytest.mark.parametrize(
    "content",
    [b"[recipe]\nname = 'not a checkpoint'\n", random.Random(0).randbytes(5000), b""],
    ids=["text file", "random bytes", "empty file"],
)
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    refusal(path, "is truncated, corrupt or not an elman checkpoint")


def test_a_foreign_torch_file_is_one_line(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    refusal(path, "is not an elman checkpoint")


def test_a_folder_without_best_or_last_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.json").write_text("{}")
    refusal(tmp_path / "run", "holds no best.pt or last.pt")


def test_a_version_1_checkpoint_without_checksum_still_loads_with_a_warning(
    checkpoints, tmp_path, capsys
):
    content = load_checkpoint(checkpoints["lm"])
    for key in ("path", "checksum"):
        content.pop(key)
    content["version"] = 1
    old = tmp_path / "old.pt"
    torch.save(content, old)  # as elman wrote checkpoints before checksums
    with pytest.warns(UserWarning, match="no checksum"):
        loaded = elman.load(old, "cpu")
    for k, v in load_checkpoint(checkpoints["lm"])["model"].items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    # the command line says it in one line, then runs
    assert main(["generate", str(old), "--tokens", "3", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("elman: warning: checkpoint") and err.count("\n") == 1
