"""``elman train RECIPE --init-from CKPT``: fine-tuning from the command line, and its bad input
as one line (exit 2, no traceback)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from elman.cli import main
from elman.train.checkpoint import load_checkpoint


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys, *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("elman: error: "), err
    return err


@pytest.fixture
def source(recipe, tmp_path, capsys) -> Path:
    out = tmp_path / "source"
    assert run(capsys, "train", str(recipe), "--set", "train.epochs=1", "--out", str(out))[0] == 0
    return out


def new_text(path: Path) -> Path:
    rng = random.Random(7)
    words = "the cat sat on a zebra".split()
    lines = (" ".join(rng.choice(words) for _ in range(5)) for _ in range(60))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.filterwarnings("ignore:.*not in the model's vocabulary")
def test_init_from_fine_tunes_on_one_file_with_its_valid_and_test(
    recipe, source, tmp_path, capsys, monkeypatch
):
    for name in ("train", "valid", "test"):
        new_text(tmp_path / f"{name}.txt")
    monkeypatch.setenv("NEW_DATA", str(tmp_path))
    out = tmp_path / "tuned"
    code, stdout, _ = run(
        capsys, "train", str(recipe), "--init-from", str(source), "--out", str(out),
        "--set", "data.dataset=$NEW_DATA/train.txt", "--set", "data.valid=$NEW_DATA/valid.txt",
        "--set", "data.test=$NEW_DATA/test.txt", "--set", "train.epochs=1",
    )  # fmt: skip
    assert code == 0
    assert f"initialised from {source / 'best.pt'}" in stdout
    assert f"vocabulary of {source / 'best.pt'} kept" in stdout and "read as <unk>" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["init_from"]["checksum"] == load_checkpoint(source / "best.pt")["checksum"]
    assert results["vocabulary"]["oov_before"] > 0  # "zebra"
    assert json.loads((out / "recipe.json").read_text())["data"]["vocab_from"] == str(
        source / "best.pt"
    )


def test_extend_vocab_from_the_command_line(recipe, source, tmp_path, capsys):
    new_text(tmp_path / "new.txt")
    code, stdout, _ = run(
        capsys, "train", str(recipe), "--init-from", str(source), "--out", str(tmp_path / "t"),
        "--set", f"data.dataset={tmp_path / 'new.txt'}", "--set", "data.extend_vocab=true",
        "--set", "train.epochs=1",
    )  # fmt: skip
    assert code == 0 and "extended by 1 word to" in stdout and "0.00% are now" in stdout


def test_bad_init_from_is_one_line(recipe, source, tmp_path, capsys):
    err = one_error(capsys, "train", str(recipe), "--init-from", str(source), "--out",
                    str(tmp_path / "a"), "--set", "model.hidden_size=9")  # fmt: skip
    assert "hidden_size (8 -> 9)" in err and not (tmp_path / "a").exists()
    err = one_error(capsys, "train", str(recipe), "--init-from", str(tmp_path / "none"))
    assert "--init-from" in err and "not found" in err
    err = one_error(capsys, "train", "--resume", str(source), "--init-from", str(source))
    assert "--init-from" in err
    err = one_error(capsys, "train", str(recipe), "--set", "data.extend_vocab=true", "--out",
                    str(tmp_path / "b"))  # fmt: skip
    assert "--init-from CKPT or data.vocab_from = CKPT" in err
