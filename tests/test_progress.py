"""elman.progress: lines on stderr now and then without a terminal, nothing on stdout, no tqdm."""

from __future__ import annotations

import subprocess
import sys

import pytest

from elman.errors import ElmanError
from elman.progress import ENV, LINE_EVERY_S, Counted, Progress, line_every


def test_without_a_terminal_lines_go_to_stderr_and_stdout_stays_empty(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "0")  # a line at every update
    with Progress("evaluating ptb/test", 4, unit="batches") as progress:
        for _ in progress.over(range(4)):
            pass
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("evaluating ptb/test | 2/4 batches (50%) | ")
    assert lines[-1].endswith(" s") and "4/4 batches (100%)" in lines[-1]


def test_phases_are_named_and_an_unknown_total_shows_no_share(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "0")
    progress = Progress("building a 3-gram kn model", bar=False)
    progress.phase("counting 2-grams")
    progress.phase("smoothing 1-grams")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("building a 3-gram kn model | counting 2-grams | ")
    assert "smoothing 1-grams" in err[1] and "%" not in err[1]


def test_work_shorter_than_the_interval_prints_nothing(monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    assert line_every() == LINE_EVERY_S == 30.0
    with Progress("translating", 1000, unit="sentences") as progress:
        progress.update(1000)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_interval_is_one_line_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(ENV, raw)
    with pytest.raises(ElmanError, match=f"{ENV} must be a number of seconds >= 0, got '{raw}'"):
        Progress("x")


class Stream:
    """The trainer's data duck type: ``len``, ``iter_from`` and ``to``."""

    def __init__(self, items: list[int], device: str = "cpu") -> None:
        self.items, self.device = items, device

    def __len__(self) -> int:
        return len(self.items)

    def iter_from(self, i: int):
        return iter(self.items[i:])

    def to(self, device: str) -> Stream:
        return Stream(self.items, device)


def test_a_counted_stream_gives_the_same_batches_and_counts_them(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "0")
    progress = Progress("scoring", 3, unit="batches")
    counted = Counted(Stream([5, 6, 7]), progress).to("meta")
    assert len(counted) == 3 and counted.data.device == "meta"
    assert list(counted.iter_from(0)) == [5, 6, 7]
    assert progress.done == 3 and "3/3 batches" in capsys.readouterr().err
    assert list(Counted([1, 2], progress).to("cpu").data) == [1, 2]  # data without .to


def test_the_module_imports_neither_torch_nor_tqdm():
    code = (
        "import sys, elman.progress as p; p.Progress('x', bar=False).update(); "
        "print(sorted(m for m in ('torch', 'tqdm', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
