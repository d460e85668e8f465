"""The tagger task end to end on a toy corpus: overfitting, results, resume, recipe checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elman.errors import ElmanError
from elman.train.checkpoint import load_checkpoint
from elman.train.run import train
from elman.train.tagger import evaluate, load
from train.tagtoy import write_tagged_corpus, write_tagger_recipe


@pytest.fixture
def tag_recipe(tmp_path: Path) -> Path:
    corpus = write_tagged_corpus(tmp_path / "toy")
    return write_tagger_recipe(tmp_path / "tagger.toml", corpus)


def test_tiny_corpus_is_overfit_to_every_tag(tmp_path, tag_recipe, capsys):
    out = tmp_path / "run"
    summary = train(tag_recipe, out=out, overrides=["train.epochs=12", "train.lr=0.02"])
    assert capsys.readouterr().out.count("accuracy") >= 2  # valid and test lines, not ppl
    loaded = load(load_checkpoint(out / "best.pt"), torch.device("cpu"))
    corpus = summary["results"]["dataset"]
    from elman.data.tagging import resolve_tagging

    m = evaluate(
        loaded["model"], loaded["vocab"], resolve_tagging(corpus), "train", 16, torch.device("cpu")
    )
    assert m["accuracy"] == 1.0 and m["words"] > 200
    record = json.loads((out / "results.json").read_text())
    assert record["task"] == "tagger"
    assert set(record["metrics"]) == {"valid", "test"}
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tag_recipe):
    whole = train(tag_recipe, out=tmp_path / "a")
    train(tag_recipe, out=tmp_path / "b", overrides=["train.max_steps=3"])
    resumed = train(resume=tmp_path / "b")
    assert resumed["global_step"] == whole["global_step"]
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_errors_are_one_line(tmp_path, tag_recipe):
    with pytest.raises(ElmanError, match="unknown key"):
        train(tag_recipe, out=tmp_path / "x", overrides=["model.hiden_size=4"])
    with pytest.raises(ElmanError, match="column"):
        train(tag_recipe, out=tmp_path / "x", overrides=["data.column=lemma"])
    with pytest.raises(ElmanError, match="not tagged text"):
        train(tag_recipe, out=tmp_path / "x", overrides=["data.dataset=ptb"])
