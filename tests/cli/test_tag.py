"""``elman tag`` and ``elman eval --report`` on a tagger trained once on the toy corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.cli import main
from elman.data.conllu import FIELDS
from elman.tasks.training import train
from train.tagtoy import write_tagged_corpus, write_tagger_recipe


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tagger")
    recipe = write_tagger_recipe(root / "t.toml", write_tagged_corpus(root / "toy"))
    train(recipe, out=root / "run", overrides=["train.epochs=6", "train.lr=0.02"])
    return root / "run"


def tag(run_dir: Path, tmp_path: Path, text: str, *args: str, capsys=None) -> tuple[int, str]:
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    code = main(["tag", str(run_dir), str(src), *args])
    return code, capsys.readouterr().out if capsys else ""


def test_plain_text_empty_lines_echoed_unknown_words_tagged(run_dir, tmp_path, capsys):
    text = "the big cat sat .\n\nzorblax   qq ran on the mat .\n"
    code, out = tag(run_dir, tmp_path, text, capsys=capsys)
    assert code == 0
    lines = out.split("\n")
    assert lines[1] == "" and len(lines) == 4 and lines[3] == ""
    assert tag(run_dir, tmp_path, "", capsys=capsys) == (0, "")
    for line_in, line_out in zip(text.split("\n"), lines, strict=True):
        pairs = [p.rsplit("/", 1) for p in line_out.split()]
        assert [w for w, _ in pairs] == line_in.split()
        assert all(t for _, t in pairs)


def test_a_sentence_gets_the_same_tags_alone_and_in_a_batch(run_dir, tmp_path, capsys):
    text = "".join(
        f"{' '.join(['the', 'old', 'dog', 'slept', 'in', 'a', 'house'][: 2 + k % 6])} .\n"
        for k in range(13)
    )
    _, batched = tag(run_dir, tmp_path, text, "--batch-size", "64", capsys=capsys)
    alone = []
    for line in text.splitlines():
        _, out = tag(run_dir, tmp_path, line + "\n", "--batch-size", "1", capsys=capsys)
        alone.append(out)
    assert batched == "".join(alone)


def test_conllu_keeps_every_column_but_upos(run_dir, tmp_path, capsys):
    src = tmp_path / "toy-test.conllu"
    write_tagged_corpus(tmp_path / "c", sizes=(1, 1, 6))
    original = (tmp_path / "c" / "toy-test.conllu").read_text()
    blanked = "\n".join(_blank_upos(line) for line in original.split("\n"))
    src.write_text(blanked)
    out = tmp_path / "out.conllu"
    assert main(["tag", str(run_dir), str(src), "--conllu", "--out", str(out)]) == 0
    k = FIELDS.index("upos")
    new_lines = out.read_text().split("\n")
    assert len(new_lines) == len(blanked.split("\n"))
    for old, new in zip(blanked.split("\n"), new_lines, strict=True):
        if not old or old.startswith("#"):
            assert new == old
            continue
        a, b = old.split("\t"), new.split("\t")
        assert a[:k] + a[k + 1 :] == b[:k] + b[k + 1 :]
        if a[0].isdigit():
            assert b[k] != "_"  # every word tagged
        else:
            assert b[k] == a[k]  # multi-word tokens and empty nodes as they were


def _blank_upos(line: str) -> str:
    if not line or line.startswith("#"):
        return line
    cols = line.split("\t")
    if cols[0].isdigit():
        cols[3] = "_"
    return "\t".join(cols)


def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tthe\tthe\tDET\n")
    assert main(["tag", str(run_dir), str(bad), "--conllu"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: expected 10 tab-separated columns" in err and "Traceback" not in err
    assert main(["tag", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["tag", str(run_dir), str(bad), "--batch-size", "0"]) == 2


def test_an_lm_checkpoint_is_refused(recipe, tmp_path, capsys):
    train(recipe, out=tmp_path / "lm", overrides=["train.epochs=1"])
    capsys.readouterr()
    assert main(["tag", str(tmp_path / "lm"), str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "`elman tag` needs a model that can tag" in err and "is a 'lm' model" in err
    assert main(["eval", str(tmp_path / "lm"), "--report"]) == 2
    assert "--report needs a model that can report" in capsys.readouterr().err


def test_eval_report_prints_accuracy_table_and_confusions(run_dir, capsys):
    assert main(["eval", str(run_dir), "--split", "valid", "--report"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "F1" in out and "confusion" in out
    assert main(["eval", str(run_dir), "--json"]) == 0
    assert '"accuracy"' in capsys.readouterr().out


def test_eval_progress_goes_to_stderr(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every batch
    assert main(["eval", str(run_dir), "--json", "--ensemble", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("{") and '"accuracy"' in out
    lines = err.splitlines()
    assert lines and all(line.startswith("tagging ") and "/test | " in line for line in lines)
    assert " batches (100%) | " in lines[-1]  # both members' batches counted


def test_ensemble_in_tag_and_eval(run_dir, tmp_path, capsys):
    text = "the big cat sat .\n\nthe dog ran .\n"
    code, alone = tag(run_dir, tmp_path, text, capsys=capsys)
    code2, twice = tag(run_dir, tmp_path, text, "--ensemble", str(run_dir), capsys=capsys)
    assert code == code2 == 0 and alone == twice  # the mean of one model twice is that model
    assert main(["eval", str(run_dir), "--ensemble", str(run_dir), "--split", "valid"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_ensemble_of_a_language_model_is_an_error(run_dir, tmp_path, capsys):
    from train.lmtoy import write_corpus, write_recipe

    recipe = write_recipe(tmp_path / "lm.toml", write_corpus(tmp_path / "corpus"))
    lm = tmp_path / "lm"
    train(recipe, out=lm, overrides=["train.epochs=1"])
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--ensemble", str(lm)]) == 2
    err = capsys.readouterr().err
    assert f"--ensemble {lm / 'best.pt'} is a 'lm' model" in err and "of one task" in err
    assert main(["eval", str(lm), "--ensemble", str(run_dir)]) == 2
    assert "--ensemble needs a model that can ensemble" in capsys.readouterr().err


def test_input_file_after_the_options(run_dir, tmp_path, capsys):
    write_tagged_corpus(tmp_path / "c", sizes=(1, 1, 2))
    src = tmp_path / "c" / "toy-test.conllu"
    assert main(["tag", str(run_dir), str(src), "--conllu"]) == 0
    before = capsys.readouterr().out
    assert main(["tag", str(run_dir), "--conllu", str(src)]) == 0  # `elman tag CKPT --conllu FILE`
    assert capsys.readouterr().out == before and before.count("# sent_id") == 2


def test_out_is_replaced_whole_or_not_at_all(run_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "tags.txt"
    out.write_text("old tags\n")
    src = tmp_path / "in.txt"
    src.write_text("the cat sat .\nthe dog ran .\n")
    import elman.inference.tagging as tagging

    real = tagging.tag_lines

    def killed(tagger, lines, sink, chunk=1000):
        real(tagger, list(lines)[:1], sink)  # the first line is written, then the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr(tagging, "tag_lines", killed)
    assert main(["tag", str(run_dir), str(src), "--out", str(out)]) == 130
    assert out.read_text() == "old tags\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "tags.txt"]
    monkeypatch.setattr(tagging, "tag_lines", real)
    assert main(["tag", str(run_dir), str(src), "--out", str(out)]) == 0
    assert out.read_text().count("\n") == 2 and "/" in out.read_text()


def test_an_unwritable_out_stops_before_the_model_is_loaded(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    bad = tmp_path / "a-file" / "tags.txt"
    assert main(["tag", str(tmp_path / "none.pt"), "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "a-file is a file, not a folder" in err
