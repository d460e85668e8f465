"""``elman average``: the last k epochs of a run into one checkpoint that eval and translate
read, and every refusal in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elman.cli import main
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint
from train.lmtoy import write_corpus, write_recipe
from train.mttoy import write_parallel_corpus, write_translation_recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("average")
    recipe = write_recipe(root / "tiny.toml", write_corpus(root / "corpus"))
    train(recipe, out=root / "lm", overrides=["train.epochs=3", "train.keep_epochs=3"])
    train(recipe, out=root / "wide", overrides=["train.epochs=1", "model.hidden_size=12"])
    corpus = write_parallel_corpus(root / "mt", sizes=(200, 20, 20))
    mt = write_translation_recipe(root / "mt.toml", corpus)
    train(mt, out=root / "mt", overrides=["train.epochs=2", "train.keep_epochs=2"])
    return {"lm": root / "lm", "wide": root / "wide", "mt": root / "mt"}


def test_average_last_k_then_eval(runs, tmp_path, capsys):
    out = tmp_path / "avg.pt"
    assert main(["average", "--last", "2", str(runs["lm"]), "--out", str(out)]) == 0
    first, last = runs["lm"] / "epoch2.pt", runs["lm"] / "epoch3.pt"
    said = capsys.readouterr().out
    assert said == f"averaged 2 checkpoint(s) ({first} … {last}) into {out}\n"
    a, b = (load_checkpoint(runs["lm"] / f"epoch{n}.pt")["model"] for n in (2, 3))
    avg = load_checkpoint(out)["model"]
    assert all(torch.allclose(avg[k], (a[k] + b[k]) / 2) for k in avg)
    assert main(["eval", str(out), "--split", "test"]) == 0
    assert "ppl" in capsys.readouterr().out


def test_averaged_translation_model_translates(runs, tmp_path, capsys):
    out = tmp_path / "mt-avg.pt"
    epochs = [str(runs["mt"] / f"epoch{n}.pt") for n in (1, 2)]
    assert main(["average", *epochs, "--out", str(out)]) == 0
    src = tmp_path / "in.de"
    src.write_text("1 2 3\n")
    assert main(["translate", str(out), str(src)]) == 0
    assert capsys.readouterr().out.count("\n") == 2  # the average line, the translation


def test_resuming_an_average_is_one_line(runs, tmp_path, capsys):
    out = tmp_path / "avg.pt"
    assert main(["average", str(runs["lm"] / "epoch3.pt"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an average of 1 checkpoints (elman average)" in err


def test_refusals_are_one_line(runs, tmp_path, capsys):
    lm, wide, mt = (str(runs[k] / "best.pt") for k in ("lm", "wide", "mt"))
    epoch3 = str(runs["lm"] / "epoch3.pt")
    avg = str(tmp_path / "avg.pt")
    for argv, message in [
        ([lm, wide, "--out", avg], "differs in model.hidden_size (8 vs 12)"),
        ([lm, mt, "--out", avg], "differs in task, vocab"),
        ([lm, "--out", str(tmp_path / "last.pt")], "the trainer writes last.pt, best.pt"),
        ([epoch3, "--out", epoch3], "the trainer writes"),
        (["--last", "2", lm, wide, "--out", avg], "--last 2 takes one run folder; got 2 paths"),
        (["--last", "5", str(runs["lm"]), "--out", avg], "train.keep_epochs=5"),
        (["--last", "0", str(runs["lm"]), "--out", avg], "argument --last: must be in 1 … 1000"),
        ([str(tmp_path / "none.pt"), "--out", avg], "none.pt not found"),
        ([lm], "the following arguments are required: --out"),
    ]:
        assert main(["average", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "avg.pt").exists()


def test_out_that_is_an_input_is_refused(tmp_path, runs, capsys):
    copy = tmp_path / "copy.pt"
    copy.write_bytes((runs["lm"] / "epoch3.pt").read_bytes())
    assert main(["average", str(copy), "--out", str(copy)]) == 2
    assert "is one of the checkpoints averaged" in capsys.readouterr().err
