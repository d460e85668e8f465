"""``elman export``: the files it writes, and every bad input as one line and exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from elman.cli import main
from elman.tasks.training import train
from train.lmtoy import NPLM_RECIPE
from train.tagtoy import write_tagged_corpus, write_tagger_recipe

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("elman: error: ") and err.count("\n") == 1, err
    return err


def test_exports_an_lm_beside_out_and_prints_the_files(lm_runs, tmp_path, capsys):
    out = tmp_path / "models" / "lm.onnx"
    assert main(["export", str(lm_runs["lstm"]), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"wrote {out}", f"wrote {out.with_name('lm.vocab.json')}"]
    vocab = json.loads(out.with_name("lm.vocab.json").read_text())
    assert vocab["task"] == "lm" and vocab["files"] == {"step": "lm.onnx"}
    assert vocab["graphs"]["step"]["outputs"] == ["log_probs", "h_out", "c_out"]
    assert vocab["state"] == {"names": ["h", "c"], "shape": [2, "batch", 8]}
    assert sorted(p.name for p in out.parent.iterdir()) == ["lm.onnx", "lm.vocab.json"]


def test_out_defaults_to_the_checkpoint_with_suffix_onnx(lm_runs, tmp_path, capsys):
    ckpt = tmp_path / "gru.pt"
    ckpt.write_bytes((lm_runs["gru"] / "best.pt").read_bytes())
    assert main(["export", str(ckpt)]) == 0
    assert (tmp_path / "gru.onnx").is_file() and (tmp_path / "gru.vocab.json").is_file()


def test_translation_writes_encoder_decoder_and_sentencepiece(translation_run, tmp_path, capsys):
    out = tmp_path / "mt.onnx"
    assert main(["export", str(translation_run), "--out", str(out)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mt.decoder.onnx", "mt.encoder.onnx", "mt.spm.model", "mt.vocab.json"]


def test_not_a_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    one_line_error(capsys, main(["export", str(bad), "--out", str(tmp_path / "x.onnx")]))
    one_line_error(capsys, main(["export", str(tmp_path / "missing.pt")]))
    assert not (tmp_path / "x.onnx").exists()


def test_an_nplm_is_refused_in_one_line(corpus, tmp_path, capsys):
    recipe = tmp_path / "nplm.toml"
    recipe.write_text(NPLM_RECIPE.format(corpus=corpus.as_posix()))
    train(recipe, out=tmp_path / "nplm")
    capsys.readouterr()
    err = one_line_error(capsys, main(["export", str(tmp_path / "nplm")]))
    assert "'nplm' model" in err and "lm, tagger, translation" in err


def test_a_whole_sentence_graph_needs_a_fused_cell(tmp_path, capsys):
    recipe = write_tagger_recipe(tmp_path / "t.toml", write_tagged_corpus(tmp_path / "toy"))
    train(recipe, out=tmp_path / "run", overrides=["train.epochs=1", "model.cell=gru"])
    capsys.readouterr()
    err = one_line_error(capsys, main(["export", str(tmp_path / "run")]))
    assert "no fused kernel" in err and "variant = 'cudnn'" in err


def test_an_unwritable_out_stops_before_loading(lm_runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = one_line_error(capsys, main(["export", str(lm_runs["lstm"]), "--out",
                                       str(blocker / "lm.onnx")]))  # fmt: skip
    assert "--out" in err


def test_without_onnx_says_how_to_install_it(lm_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    err = one_line_error(capsys, main(["export", str(lm_runs["lstm"])]))
    assert err == "elman: error: elman export needs the onnx package: pip install 'elman[export]'\n"


def test_an_unknown_format_is_refused(lm_runs, capsys):
    assert main(["export", str(lm_runs["lstm"]), "--format", "tflite"]) == 2
    assert Path(lm_runs["lstm"] / "model.onnx").exists() is False
