"""``elman translate`` and ``elman eval`` on translation models trained once on the toy corpus,
and every kind of bad input."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from elman.cli import main
from elman.tasks.training import train
from elman.train.checkpoint import save_checkpoint
from train.mttoy import write_parallel_corpus, write_translation_recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("translate")
    corpus = write_parallel_corpus(root / "toy", sizes=(1500, 30, 30))
    out = {"corpus": corpus}
    recipe = write_translation_recipe(root / "attention.toml", corpus)
    overrides = ["train.epochs=12", "model.hidden_size=64", "train.schedule=plateau",
                 "train.lr_decay=0.5"]  # fmt: skip
    train(recipe, out=root / "attention", overrides=overrides)  # learns the task exactly
    recipe = write_translation_recipe(root / "plain.toml", corpus, kind="plain")
    train(recipe, out=root / "plain", overrides=["train.epochs=1"])
    # other subword pieces, for the ensemble's vocabulary check
    train(recipe, out=root / "unigram", overrides=["train.epochs=1", "data.subword=unigram"])
    out.update(attention=root / "attention", plain=root / "plain", unigram=root / "unigram")
    return out


def translate(run: Path, tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    src = tmp_path / "in.de"
    src.write_text(text, encoding="utf-8")
    dst = tmp_path / "out.en"
    code = main(["translate", str(run), str(src), "--out", str(dst), *args])
    return code, dst.read_text(encoding="utf-8") if dst.exists() else ""


def test_translates_line_for_line_with_empty_lines_and_unknown_characters(runs, tmp_path):
    text = "1 2 3\n\n4 5 6 7\n   \n€ 8 ☃ 9\n2 1"  # no newline at the end
    code, out = translate(runs["attention"], tmp_path, text)
    lines = out.split("\n")
    assert code == 0 and len(lines) == 7 and lines[-1] == ""
    assert lines[1] == "" and lines[3] == ""
    assert lines[0] == "3 2 1" and lines[2] == "7 6 5 4"
    assert all(line.strip() for k, line in enumerate(lines[:6]) if k not in (1, 3))
    assert translate(runs["attention"], tmp_path, "")[1] == ""


def test_standard_input_and_output(runs, tmp_path, capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"5 6\n\n")))
    assert main(["translate", str(runs["attention"]), "--beam", "1"]) == 0
    assert capsys.readouterr().out == "6 5\n\n"


def test_batch_size_and_beam_options(runs, tmp_path):
    text = "".join(
        " ".join(str((k * 7 + j) % 10) for j in range(2 + k % 5)) + "\n" for k in range(17)
    )
    _, batched = translate(runs["attention"], tmp_path, text, "--batch-size", "64")
    _, single = translate(runs["attention"], tmp_path, text, "--batch-size", "1")
    assert batched == single and len(batched.splitlines()) == 17
    for args in (["--beam", "1"], ["--beam", "5", "--length-penalty", "0"],
                 ["--max-len-ratio", "0.5"]):  # fmt: skip
        code, out = translate(runs["attention"], tmp_path, text, *args)
        assert code == 0 and len(out.splitlines()) == 17
    _, short = translate(runs["attention"], tmp_path, "1 2 3 4 5 6\n", "--max-len-ratio", "0")
    assert len(short.split()) <= 3  # at most 0 · 6 + extra (3) pieces


def test_over_long_line_is_cut_with_a_warning(runs, tmp_path, capsys):
    long = " ".join(str(k % 10) for k in range(300))
    code, out = translate(runs["attention"], tmp_path, f"1 2\n{long}\n")
    err = capsys.readouterr().err
    assert code == 0 and len(out.splitlines()) == 2
    assert "warning" in err and "cut to 250" in err and "line 2" in err


def test_another_tasks_checkpoint_is_a_one_line_error(runs, tmp_path, capsys):
    fake = save_checkpoint(
        {"task": "lm", "recipe": {}, "vocab": {}, "model": {}}, tmp_path / "lm.pt"
    )
    code, _ = translate(fake, tmp_path, "1 2\n")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "`elman translate` needs a model that can translate" in err and "'lm' model" in err


def test_bad_options_are_one_line_errors(runs, tmp_path, capsys):
    for args, message in [
        (["--beam", "0"], "argument --beam: must be in 1 … 100, got 0"),
        (["--beam", "100000"], "argument --beam: must be in 1 … 100, got 100000"),
        (["--batch-size", "0"], "argument --batch-size: must be in 1 … 100000, got 0"),
        (["--length-penalty", "nan"], "argument --length-penalty: must be a finite number"),
        (["--max-len-ratio", "inf"], "argument --max-len-ratio: must be a finite number"),
        (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N, mps"),
        (["--threads", "0"], "argument --threads: must be in 1 … 1024, got 0"),
        (["--plot-attention", "1"], "go together"),
        (["--plot-attention", "9", "--plot-out", str(tmp_path / "a.png")], "the input has 1 lines"),
    ]:
        code, _ = translate(runs["attention"], tmp_path, "1 2\n", *args)
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


def test_plot_attention_writes_a_png_for_attention_models_only(runs, tmp_path, capsys):
    png = tmp_path / "att.png"
    code, out = translate(
        runs["attention"], tmp_path, "1 2\n3 4 5\n", "--plot-attention", "2", "--plot-out", str(png)
    )
    assert code == 0 and out == "2 1\n5 4 3\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _ = translate(
        runs["plain"], tmp_path, "1 2\n", "--plot-attention", "1", "--plot-out", str(png)
    )
    err = capsys.readouterr().err
    assert code == 2 and "'plain' model, which has no attention" in err


def test_eval_prints_bleu_chrf_and_signatures(runs, capsys):
    assert main(["eval", str(runs["attention"]), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "/test: BLEU" in out and "chrF" in out
    assert "sacreBLEU nrefs:1|case:mixed|eff:no|tok:13a" in out
    assert main(["eval", str(runs["plain"]), "--data", str(runs["corpus"]), "--split", "val",
                 "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "valid" and 0 <= result["bleu"] <= 100 and result["sentences"] == 30


def test_progress_of_scoring_and_decoding_goes_to_stderr(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every batch
    assert main(["eval", str(runs["attention"]), "--split", "test"]) == 0
    out, err = capsys.readouterr()
    assert "BLEU" in out and "scoring" not in out and "translating" not in out
    name = f"{runs['corpus']}/test"
    assert f"scoring {name} | " in err and f"translating {name} (beam " in err
    assert "30/30 sentences (100%)" in err
    code, out = translate(runs["attention"], tmp_path, "1 2 3\n4 5\n", "--batch-size", "1")
    assert code == 0 and out == "3 2 1\n5 4\n"  # --out: the translations alone
    assert "translating | 2/2 sentences (100%) | " in capsys.readouterr().err


@pytest.mark.data
def test_eval_on_multi30k_by_split_name(runs, capsys):
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "multi30k" / "raw" / "test_2017_mscoco.de.gz").is_file():
        pytest.skip("ELMAN_DATA does not hold multi30k")
    args = ["eval", str(runs["plain"]), "--data", "multi30k", "--split", "test_2017_mscoco"]
    assert main([*args, "--batch-size", "256"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("multi30k/test_2017_mscoco: BLEU") and "461 sentences" in out


def test_out_is_replaced_whole_or_not_at_all(runs, tmp_path, monkeypatch):
    out = tmp_path / "out.txt"
    out.write_text("an older translation\n")
    src = tmp_path / "in.txt"
    src.write_text("1 2\n3 4 5\n")
    import elman.files

    real = elman.files.atomic_open

    @contextlib.contextmanager
    def killed(path, mode="w", encoding="utf-8"):
        with real(path, mode, encoding) as f:
            f.write("2 1\n")  # half the translations are on disk when the run dies
            f.flush()
            raise KeyboardInterrupt
            yield f

    monkeypatch.setattr(elman.files, "atomic_open", killed)
    assert main(["translate", str(runs["attention"]), str(src), "--out", str(out)]) == 130
    assert out.read_text() == "an older translation\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]
    monkeypatch.setattr(elman.files, "atomic_open", real)
    assert main(["translate", str(runs["attention"]), "--out", str(out), str(src)]) == 0
    assert out.read_text() == "2 1\n5 4 3\n"  # INPUT after the options too


def test_unwritable_outputs_stop_before_the_model_is_loaded(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for option in ("--out", "--plot-out"):
        argv = ["translate", str(tmp_path / "none.pt"), option, str(tmp_path / "a-file" / "o")]
        if option == "--plot-out":
            argv += ["--plot-attention", "1"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and option in err and "a-file is a file, not a folder" in err


def test_n_best_writes_k_moses_lines_per_line_best_first(runs, tmp_path):
    from elman.data.nbest import read_moses

    text = "1 2 3\n\n4 5 6 7\n"
    code, out = translate(runs["attention"], tmp_path, text, "--n-best", "3")
    rows = out.splitlines()
    assert code == 0 and [r.split(" ||| ")[0] for r in rows] == ["0"] * 3 + ["1"] + ["2"] * 3
    assert rows[3] == "1 |||  ||| logprob=0.000000 pieces=0 ||| 0.000000"  # the blank line
    assert rows[0].startswith("0 ||| 3 2 1 ||| logprob=-") and " pieces=" in rows[0]
    nbest = read_moses(tmp_path / "out.en")
    _, one_best = translate(runs["attention"], tmp_path, text, "--beam", "3")
    assert [hyps[0].text for hyps in nbest.lists.values()] == one_best.splitlines()
    for hyps in nbest.lists.values():
        totals = [h.features["total"] for h in hyps]
        assert totals == sorted(totals, reverse=True)
        assert all(h.features["logprob"] <= h.features["total"] <= 0 for h in hyps)  # α = 1


def test_n_best_widens_the_recipes_beam_unless_beam_is_given(runs, tmp_path, capsys):
    code, out = translate(runs["attention"], tmp_path, "1 2 3\n", "--n-best", "5")  # beam 3
    assert code == 0 and len(out.splitlines()) == 5
    code, _ = translate(runs["attention"], tmp_path, "1 2 3\n", "--n-best", "5", "--beam", "2")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--n-best 5 needs a beam of at least 5; got --beam 2" in err


def test_an_ensemble_with_itself_translates_as_the_model_alone(runs, tmp_path):
    text = "1 2 3\n4 5 6 7\n\n9 8\n"
    for args in ([], ["--beam", "1"], ["--n-best", "2"]):
        _, alone = translate(runs["attention"], tmp_path, text, *args)
        _, twice = translate(runs["attention"], tmp_path, text, *args, "--ensemble",
                             str(runs["attention"]))  # fmt: skip
        if "--n-best" in args:  # the same hypotheses; log P equal up to rounding
            alone, twice = (
                [r.rsplit(" ||| ", 2)[0] for r in o.splitlines()] for o in (alone, twice)
            )
        assert twice == alone
    code, mixed = translate(runs["attention"], tmp_path, text, "--ensemble", str(runs["plain"]))
    assert code == 0 and len(mixed.splitlines()) == 4


def test_an_ensemble_needs_the_same_subwords_and_task(runs, tmp_path, capsys):
    code, _ = translate(runs["attention"], tmp_path, "1 2\n", "--ensemble", str(runs["unigram"]))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--ensemble {runs['unigram'] / 'best.pt'}: its source subword vocabulary" in err
    png = str(tmp_path / "a.png")
    code, _ = translate(runs["attention"], tmp_path, "1 2\n", "--plot-attention", "1",
                        "--plot-out", png, "--ensemble", str(runs["plain"]))  # fmt: skip
    assert code == 2 and "give no --ensemble" in capsys.readouterr().err


def test_no_repeat_ngram_blocks_repeated_words(runs, tmp_path):
    _, free = translate(runs["attention"], tmp_path, "1 1 2 2\n")
    assert free == "2 2 1 1\n"  # the model reverses the digits
    code, blocked = translate(runs["attention"], tmp_path, "1 1 2 2\n", "--no-repeat-ngram", "1")
    words = blocked.split()
    assert code == 0 and len(set(words)) == len(words)
    _, bigrams = translate(runs["attention"], tmp_path, "1 2 1 2\n", "--no-repeat-ngram", "2")
    assert bigrams.split()[:3] == ["2", "1", "2"] and bigrams != "2 1 2 1\n"


def test_bad_new_options_are_one_line_errors(runs, tmp_path, capsys):
    for args, message in [
        (["--n-best", "0"], "argument --n-best: must be in 1 … 100, got 0"),
        (["--no-repeat-ngram", "-1"], "argument --no-repeat-ngram: must be in 0 … 100, got -1"),
        (["--interactive"], "--interactive reads standard input; give - instead of"),
    ]:
        code, _ = translate(runs["attention"], tmp_path, "1 2\n", *args)
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    code = main(["translate", str(runs["attention"]), "-", "--interactive", "--out",
                 str(tmp_path / "o.txt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "give no --out" in err and err.count("\n") == 1


def test_standard_input_from_a_terminal_is_interactive(monkeypatch):
    import sys

    from elman.cli.translate import is_interactive

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    assert is_interactive(None, "-", None, None)
    assert not is_interactive(None, "-", "out.txt", None)  # a file is written whole, at the end
    assert not is_interactive(None, "in.txt", None, None) and not is_interactive(
        False, "-", None, None
    )
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert not is_interactive(None, "-", None, None) and is_interactive(True, "-", None, None)


def test_interactive_mode_answers_each_line_before_the_next_is_sent(runs):
    """A co-process: write one line, read its answer back, with standard input still open."""
    import subprocess
    import sys
    import threading

    argv = [sys.executable, "-m", "elman", "translate", str(runs["attention"]), "-",
            "--interactive", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8",
    )  # fmt: skip
    timer = threading.Timer(120, proc.kill)  # a hang fails the test instead of blocking it
    timer.start()
    try:
        answers = []
        for line in ("1 2 3", "", "4 5 6 7"):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            answers.append(proc.stdout.readline())
        proc.stdin.close()
        assert proc.wait() == 0, proc.stderr.read()
    finally:
        timer.cancel()
        proc.kill()
    assert answers == ["3 2 1\n", "\n", "7 6 5 4\n"]


def test_interactive_n_best_numbers_the_lines_read(runs, monkeypatch, capsys):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1 2\n3 4 5\n")))
    assert main(["translate", str(runs["attention"]), "--interactive", "--n-best", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split(" ||| ")[:2] for r in rows[::2]] == [["0", "2 1"], ["1", "5 4 3"]]
    assert len(rows) == 4
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1 2\n\xff\n")))
    assert main(["translate", str(runs["attention"]), "--interactive"]) == 2
    out, err = capsys.readouterr()
    assert out == "2 1\n" and "<stdin> line 2, byte 0: not valid UTF-8 (byte 0xff)" in err
