"""The torch-free paths of the command line stay torch-free.

``elman --help``, ``elman ngram …`` and ``elman data …`` need at most NumPy: each runs here as
``python -m elman …`` in a fresh interpreter, which then reports the heavy modules it loaded.
Every command module must import torch (and the other heavy packages) inside its functions,
since building the parser imports them all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "safetensors", "sentencepiece", "sacrebleu", "conllu", "tqdm", "matplotlib")

# Runs `python -m elman ARGV...` in this interpreter, then prints the heavy modules it loaded.
DRIVER = """
import runpy, sys
heavy = sys.argv[1].split(",")
sys.argv = ["elman", *sys.argv[2:]]
try:
    runpy.run_module("elman", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as stop:
    code = stop.code or 0
print("LOADED:" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def loaded(*argv: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of ``heavy`` that ``python -m elman ARGV`` imported (it must exit 0)."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, ",".join(heavy), *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("LOADED:"), proc.stderr
    return [m for m in line.removeprefix("LOADED:").split(",") if m]


@pytest.mark.parametrize("argv", [["--help"], ["ngram", "--help"], ["data", "--help"]])
def test_help_imports_nothing_heavy(argv):
    assert loaded(*argv, heavy=(*HEAVY, "numpy")) == []


def test_ngram_build_eval_sample_without_torch(tmp_path: Path):
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat\nthe dog sat\na cat saw a dog\n" * 4)
    arpa = tmp_path / "m.arpa"
    build = ["ngram", "build", "--order", "3", "--smoothing", "kn", "--data", str(text)]
    assert loaded(*build, "--out", str(arpa)) == []
    assert arpa.is_file()
    assert loaded("ngram", "eval", str(arpa), "--data", str(text), "--json") == []
    assert loaded("ngram", "sample", str(arpa), "--sentences", "2") == []
    binary = tmp_path / "m.bin"
    assert loaded("ngram", "binary", str(arpa), str(binary)) == []
    assert loaded("ngram", "eval", str(binary), "--data", str(text), "--json") == []
    mix = ["ngram", "mix", str(arpa), str(arpa), "--lambda", "0.5", "--out", str(tmp_path / "x")]
    assert loaded(*mix) == []
    prune = ["ngram", "prune", str(arpa), "--threshold", "1e-3", "--out", str(tmp_path / "p")]
    assert loaded(*prune) == []


def test_ngram_build_progress_lines_load_no_tqdm(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # the line path runs at every phase
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat\nthe dog sat\n" * 4)
    build = ["ngram", "build", "--order", "2", "--smoothing", "kn", "--data", str(text)]
    assert loaded(*build, "--out", str(tmp_path / "m.arpa")) == []


def test_data_list_without_torch(tmp_path: Path):
    assert loaded("data", "list", "--root", str(tmp_path)) == []
