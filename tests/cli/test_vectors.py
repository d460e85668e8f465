"""``elman vectors`` end to end on a tiny text file, and its bad input."""

from __future__ import annotations

import pytest

from elman.cli import main
from elman.data.vectors import read_vectors


def test_vectors_command_writes_a_word2vec_file(tmp_path, capsys):
    pytest.importorskip("gensim")
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50, encoding="utf-8")
    out = tmp_path / "tiny.vec"
    rc = main(["vectors", "--data", str(text), "--out", str(out), "--dim", "8", "--min-count", "1"])
    assert rc == 0
    words, vectors = read_vectors(out)
    assert words[0] == "the" and set(words) == {"the", "cat", "sat", "on", "mat", "dog", "log"}
    assert vectors.shape == (7, 8)
    assert "7 vectors of dimension 8" in capsys.readouterr().out


def test_vectors_show_their_epochs_on_stderr(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gensim")
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every epoch
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat\n" * 20, encoding="utf-8")
    argv = ["vectors", "--data", str(text), "--out", str(tmp_path / "v"), "--epochs", "3"]
    assert main([*argv, "--dim", "4", "--min-count", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("5 vectors of dimension 4")
    assert "training word vectors | building the vocabulary" in err
    assert "training word vectors | skip-gram | 3/3 epochs (100%)" in err


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    rc = main(["vectors", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x.vec")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
    text = tmp_path / "t.txt"
    text.write_text("a b\n", encoding="utf-8")
    rc = main(["vectors", "--data", str(text), "--out", str(tmp_path / "x.vec"), "--dim", "0"])
    assert rc == 2 and "argument --dim: must be in 1 … 10000, got 0" in capsys.readouterr().err


def test_a_min_count_no_word_reaches_is_one_line(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("a b a\n", encoding="utf-8")
    argv = ["vectors", "--data", str(text), "--out", str(tmp_path / "x.vec"), "--min-count", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--min-count 3" in err and "occurs 2 times" in err
