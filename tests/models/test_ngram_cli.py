"""``elman ngram build|eval|sample`` end to end on tiny corpora (and PTB when present)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from elman.cli import main
from elman.cli.ngram import build, evaluate, sample
from elman.models.ngram import NgramConfig, NgramLM, read_arpa

TRAIN = ["the cat sat on the mat", "the dog sat", "a cat saw a dog", "the mat"] * 3
TEST = ["the cat sat on a dog", "a zebra sat"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (folder / "valid.txt").write_text("the cat\n")
    (folder / "test.txt").write_text("\n".join(TEST) + "\n")
    return folder


def test_build_eval_sample_end_to_end(tmp_path, corpus, capsys):
    arpa = tmp_path / "m.arpa"
    rc, out, err = run(
        capsys, "ngram", "build", "--order", "3", "--smoothing", "kn",
        "--data", str(corpus), "--out", str(arpa),
    )  # fmt: skip
    assert rc == 0 and arpa.is_file() and "3-grams" in out
    rc, out, _ = run(capsys, "ngram", "eval", str(arpa), "--data", str(corpus), "--json")
    assert rc == 0
    result = json.loads(out)
    direct = NgramLM.build(TRAIN, NgramConfig(order=3, smoothing="kn")).perplexity(TEST)
    assert result["perplexity"] == pytest.approx(
        direct.perplexity, rel=1e-7
    )  # the file holds 8 decimals
    assert result["perplexity_no_oov"] == pytest.approx(direct.perplexity_no_oov, rel=1e-7)
    assert (result["tokens"], result["sentences"], result["oovs"]) == (11, 2, 1)
    rc, out, _ = run(capsys, "ngram", "eval", str(arpa), "--data", str(corpus), "--split", "valid")
    assert rc == 0 and "perplexity" in out and "1 sentences, 2 words, 3 tokens" in out
    rc, out, _ = run(capsys, "ngram", "sample", str(arpa), "--sentences", "3", "--seed", "5")
    assert rc == 0 and out.splitlines() == sample(arpa, sentences=3, seed=5)
    assert len(out.splitlines()) == 3


def test_build_shows_its_phases_on_stderr_and_leaves_stdout_as_it_was(
    tmp_path, corpus, capsys, monkeypatch
):
    argv = ["ngram", "build", "--order", "3", "--data", str(corpus), "--out", str(tmp_path / "m")]
    rc, quiet, err = run(capsys, *argv)
    assert rc == 0 and "building" not in err  # faster than the 30 s between two lines
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every phase
    rc, out, err = run(capsys, *argv)
    assert rc == 0 and out.splitlines()[:-1] == quiet.splitlines()[:-1]  # the last: seconds
    lines = [line for line in err.splitlines() if not line.startswith("elman: warning: ")]
    assert all(line.startswith("building a 3-gram mkn model | ") for line in lines)
    phases = [line.split(" | ")[1] for line in lines]
    assert phases[:3] == [f"reading {corpus}", "building the vocabulary", "counting 2-grams"]
    assert "smoothing 3-grams" in phases and "writing 3-grams (0%)" in phases


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")
def test_plain_text_file_as_data(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TRAIN) + "\n")
    built = build(str(text), order=2, smoothing="mkn", out=tmp_path / "m.arpa")
    assert read_arpa(tmp_path / "m.arpa").counts() == built.counts
    r = evaluate(tmp_path / "m.arpa", str(text), split="test")  # a file is its own text
    assert r["sentences"] == len(TRAIN) and r["oovs"] == 0


def test_errors_are_one_line(tmp_path, corpus, capsys):
    rc, _, err = run(
        capsys, "ngram", "build", "--smoothing", "good-turing", "--data", str(corpus),
        "--out", str(tmp_path / "x.arpa"),
    )  # fmt: skip
    assert rc == 2 and err.count("\n") == 1 and "ml, addk, abs, kn, mkn" in err
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\nnot-a-number </s>\n\\end\\\n")
    rc, _, err = run(capsys, "ngram", "eval", str(bad), "--data", str(corpus))
    assert rc == 2 and f"{bad}:6: expected numbers" in err and err.count("\n") == 1
    (tmp_path / "blank.txt").write_text("\n\n")
    rc, _, err = run(
        capsys, "ngram", "build", "--data", str(tmp_path / "blank.txt"), "--out", str(bad)
    )
    assert rc == 2 and "no words" in err and err.count("\n") == 1
    rc, _, err = run(capsys, "ngram", "sample", str(tmp_path / "none.arpa"))
    assert rc == 2 and "no such ARPA file" in err


def test_tiny_corpus_warns_and_still_builds(tmp_path, capsys):
    (tmp_path / "one.txt").write_text("hello world\n")
    rc, _, err = run(
        capsys,
        "ngram",
        "build",
        "--data",
        str(tmp_path / "one.txt"),
        "--out",
        str(tmp_path / "o.arpa"),
    )
    assert rc == 0 and "elman: warning:" in err and "using D1=0.5 D2=1.0 D3+=1.5" in err
    assert read_arpa(tmp_path / "o.arpa").order == 5


@pytest.mark.data
def test_ptb_trigram(tmp_path, capsys):
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ELMAN_DATA with ptb/ is not available")
    arpa = tmp_path / "ptb3.arpa"
    assert (
        run(capsys, "ngram", "build", "--order", "3", "--data", "ptb", "--out", str(arpa))[0] == 0
    )
    rc, out, _ = run(capsys, "ngram", "eval", str(arpa), "--data", "ptb", "--json")
    r = json.loads(out)
    # The published token counts of the test split (words + one </s> a line), no OOVs.
    assert rc == 0 and (r["tokens"], r["sentences"], r["oovs"]) == (82430, 3761, 0)
    assert r["perplexity"] == r["perplexity_no_oov"]


# Runs `elman ARGV...` with an ARPA writer that flushes and pauses after every write and says
# so on stdout: the test kills it (SIGKILL) mid-file, as a crash or `kill -9` would.
SLOW_WRITER = """
import contextlib, sys, time
import elman.models.ngram.arpa as arpa
import elman.models.ngram.estimation as estimation
real = arpa.atomic_open

@contextlib.contextmanager
def slow(path, mode="w"):
    with real(path, mode) as f:
        class Slow:
            def write(self, text):
                f.write(text)
                f.flush()
                print("wrote", len(text), flush=True)
                time.sleep(0.05)
        yield Slow()

arpa.atomic_open = estimation.atomic_open = slow  # a model written whole, or as it is built
from elman.cli import main
sys.exit(main(sys.argv[1:]))
"""


def kill_mid_write(argv: list[str], writes: int) -> None:
    """Start ``elman ARGV`` with the slow writer and SIGKILL it after ``writes`` writes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        for _ in range(writes):
            assert proc.stdout.readline().startswith("wrote"), "the build ended before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("writes", [1, 4])
def test_a_build_killed_mid_write_keeps_the_old_model(tmp_path, corpus, capsys, writes):
    arpa = tmp_path / "m.arpa"
    assert build(str(corpus), order=3, smoothing="kn", out=arpa) is not None
    old = arpa.read_bytes()
    argv = ["ngram", "build", "--order", "4", "--data", str(corpus), "--out", str(arpa)]
    kill_mid_write(argv, writes)
    assert arpa.read_bytes() == old  # the old model, whole
    assert read_arpa(arpa).order == 3
    torn = list(tmp_path.glob(".m.arpa.*.tmp"))
    assert len(torn) == 1 and 0 < torn[0].stat().st_size  # the kill struck mid-file
    rc, _, _ = run(capsys, *argv)  # the next build to that path clears what the kill left
    assert rc == 0 and read_arpa(arpa).order == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "m.arpa"]


def test_an_unwritable_out_stops_before_the_counting(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    # The data does not exist either: the output is checked first, before minutes of counting.
    rc, _, err = run(
        capsys, "ngram", "build", "--data", str(tmp_path / "missing"),
        "--out", str(tmp_path / "a-file" / "m.arpa"),
    )  # fmt: skip
    assert rc == 2 and err.count("\n") == 1
    assert "--out" in err and "a-file is a file, not a folder" in err
    rc, _, err = run(
        capsys, "ngram", "build", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)
    )
    assert rc == 2 and "it is a folder" in err


def test_eval_refuses_a_perplexity_that_is_not_finite(tmp_path, corpus, capsys):
    # "zebra" has probability zero (log10 -inf, as KenLM reads it), and is in the test text
    arpa = tmp_path / "zero.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\n\n\\1-grams:\n-1\t<unk>\n-99\t<s>\n-0.5\t</s>\n-0.3\tthe\n"
        "-inf\tzebra\n\n\\end\\\n"
    )
    (tmp_path / "t.txt").write_text("the zebra\n")
    rc, out, err = run(capsys, "ngram", "eval", str(arpa), "--data", str(tmp_path / "t.txt"))
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "perplexity inf is not finite" in err and str(arpa) in err
    rc, out, _ = run(
        capsys, "ngram", "eval", str(arpa), "--data", str(corpus), "--split", "valid", "--json"
    )  # "the cat": no zebra, a finite perplexity
    assert rc == 0 and json.loads(out)["tokens"] == 3
