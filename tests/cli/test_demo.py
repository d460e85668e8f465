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


def test_next_steps_list_the_files_and_what_a_fresh_shell_needs(tmp_path, monkeypatch):
    import sys

    from elman.cli.demo import next_steps

    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    for name in ("best.pt", "metrics.jsonl", "results.json"):
        (run_dir / name).write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))  # make's .venv/bin/python
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("MAKELEVEL", "1")
    monkeypatch.setenv("ELMAN_DATA", str(tmp_path / "data dir"))
    text = next_steps("demo")
    assert f"the run is in {run_dir}:" in text
    assert "best.pt" in text and "results.json" in text and "last.pt" not in text
    assert f"the corpora are read from {tmp_path / 'data dir'} (ELMAN_DATA, set by make)" in text
    after = text.split(f"next, in a new shell in {tmp_path}:\n")[1]
    commands = [line.split(" # ")[0].strip() for line in after.splitlines()]
    assert commands[:2] == [
        "source .venv/bin/activate",
        f"export ELMAN_DATA='{tmp_path / 'data dir'}'",
    ]
    assert "elman eval demo --split test" in commands
    assert any(c.startswith("elman generate demo --prompt") for c in commands)


def test_an_activated_venv_and_your_own_elman_data_need_no_setup(tmp_path, monkeypatch):
    import sys

    from elman.cli.demo import next_steps

    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.delenv("MAKELEVEL", raising=False)
    monkeypatch.setenv("ELMAN_DATA", str(tmp_path))
    text = next_steps(str(tmp_path / "run"))
    assert "source " not in text and "export " not in text
    assert f"the corpora are read from {tmp_path} (ELMAN_DATA)" in text
