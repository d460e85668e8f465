"""``elman demo``: without PTB it says how to get it and exits 2; it replaces only a run folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from elman.cli import main
from elman.cli.demo import check_run_folder
from elman.errors import ElmanError


def test_demo_without_the_corpus_explains_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELMAN_DATA", str(tmp_path / "no-data"))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    out, err = capsys.readouterr()
    assert "max |difference|" in out  # the recurrent core check ran first
    assert err.count("\n") == 1 and err.startswith("elman: error: ")
    assert "ptb.train.txt" in err and "elman data download ptb" in err
    assert not (tmp_path / "demo").exists()


def test_demo_replaces_only_a_run_folder(tmp_path):
    check_run_folder(tmp_path / "absent")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("last.pt", "metrics.jsonl", ".last.pt.abc.tmp"):
        (run_dir / name).write_text("x")
    check_run_folder(run_dir)
    (run_dir / "thesis.tex").write_text("years of work")
    with pytest.raises(ElmanError, match="thesis.tex"):
        check_run_folder(run_dir)
    with pytest.raises(ElmanError, match="is a file"):
        check_run_folder(run_dir / "thesis.tex")


@pytest.mark.data
def test_demo_runs_a_few_steps_on_ptb(tmp_path, capsys):
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ELMAN_DATA does not hold ptb/ptb.train.txt")
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("keep me")
    assert main(["demo", "--steps", "2", "--out", str(keep)]) == 2
    assert (keep / "notes.txt").read_text() == "keep me"
    capsys.readouterr()
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "2", "--out", str(out)]) == 0
    assert "stopped after step 2" in capsys.readouterr().out
    assert (out / "last.pt").is_file()
