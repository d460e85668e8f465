"""`elman lab …` end to end on tiny sizes; bad input is one line and exit 2."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from elman.cli import main
from elman.lab.gradients import run as gradients_run
from train.lmtoy import write_corpus, write_recipe


@pytest.fixture
def corpus(tmp_path):
    words = [f"w{i}" for i in range(20)]
    for split in ("train", "valid", "test"):
        lines = [" ".join(words[(i * 7 + j) % 20] for j in range(9)) for i in range(40)]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_lab_gradients_cli(corpus, tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["lab", "gradients", "--cells", "rnn-tanh,irnn,lstm", "--data", str(corpus),
            "--steps", "6", "--batch", "2", "--hidden", "4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:3]] == ["rnn-tanh", "irnn", "lstm"]
    rows = list(csv.DictReader((out / "gradients.csv").open()))
    assert len(rows) == 3 * 7 and {r["cell"] for r in rows} == {"rnn-tanh", "irnn", "lstm"}
    assert (out / "gradients.png").stat().st_size > 0


def test_lab_gradients_of_a_trained_checkpoint(tmp_path, capsys):
    """A 2-layer LSTM trained by `elman train`, on its own corpus and vocabulary."""
    corpus = write_corpus(tmp_path / "corpus")
    recipe = write_recipe(tmp_path / "tiny.toml", corpus)
    assert (
        main(["train", str(recipe), "--set", "train.epochs=1", "--out", str(tmp_path / "r")]) == 0
    )
    capsys.readouterr()
    ckpt = str(tmp_path / "r" / "best.pt")
    argv = ["lab", "gradients", "--checkpoint", ckpt, "--cells", "gru", "--steps", "5",
            "--batch", "2", "--hidden", "4", "--out", str(tmp_path / "g")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trained lstm ") and "\ngru " in printed
    bad = ["lab", "gradients", "--checkpoint", str(tmp_path / "nothing.pt"), "--out", "x"]
    assert main(bad) == 2


def test_lab_adding_cli_and_errors(tmp_path, capsys):
    argv = ["lab", "adding", "--cell", "gru", "--T", "5", "--hidden", "4", "--steps", "10",
            "--eval-every", "10", "--valid-size", "8", "--test-size", "8",
            "--out", str(tmp_path / "a"), "--results", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 0
    assert "adding T=5 gru" in capsys.readouterr().out
    assert main(["lab", "plot", str(tmp_path / "r.json"), "--out", str(tmp_path / "p.png")]) == 0
    assert "| adding | 5 | gru |" in capsys.readouterr().out
    assert main(argv) == 2  # the run folder is taken
    assert "already holds a run" in capsys.readouterr().err
    assert main(["lab", "copy", "--cell", "rnn", "--out", str(tmp_path / "c")]) == 2
    assert main(["lab", "gradients", "--cells", "tanh", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("elman: error:") == 2 and "Traceback" not in err


@pytest.mark.data
def test_gradients_on_ptb(tmp_path):
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ELMAN_DATA does not hold ptb/ptb.train.txt")
    flows = gradients_run(["rnn-tanh", "irnn"], data="ptb", steps=8, batch=2, hidden=8)
    assert set(flows) == {"rnn-tanh", "irnn"} and len(flows["irnn"].jacobian) == 9


def test_lab_outputs_are_checked_before_the_training(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    bad = str(tmp_path / "a-file" / "r.json")
    argv = ["lab", "adding", "--steps", "100000", "--out", str(tmp_path / "a"), "--results", bad]
    assert main(argv) == 2  # at once: 100,000 steps would take minutes
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--results" in err and "a-file is a file, not a folder" in err
    assert not (tmp_path / "a" / "last.pt").exists()
    for argv in (
        ["lab", "exploding", "--out", str(tmp_path / "a-file")],
        ["lab", "gradients", "--out", str(tmp_path / "a-file")],
        ["lab", "plot", str(tmp_path / "a-file"), "--out", str(tmp_path / "a-file" / "p.png")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a-file is a file, not a folder" in err, err
