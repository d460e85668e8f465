"""The translation task end to end on the digit-reversal corpus: learned exactly by attention,
results files with BLEU and chrF, exact resume, vocabulary from the training split only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elman.data.subword import UNK_ID
from elman.errors import ElmanError
from elman.inference.search import DecodeConfig
from elman.inference.translate import translate_lines
from elman.tasks import translation
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint
from train.mttoy import write_parallel_corpus, write_translation_recipe


def test_attention_learns_to_reverse_digit_strings_exactly(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(1500, 50, 100))
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus)
    overrides = ["train.epochs=12", "model.hidden_size=64", "train.schedule=plateau",
                 "train.lr_decay=0.5"]  # fmt: skip
    train(recipe, out=tmp_path / "run", overrides=overrides)
    loaded = translation.TASK.load(load_checkpoint(tmp_path / "run"), torch.device("cpu"))
    sources = (corpus / "test.de").read_text().splitlines()
    references = (corpus / "test.en").read_text().splitlines()
    for beam in (1, 4):
        out = translate_lines(loaded.model, loaded.vocab, sources, DecodeConfig(beam=beam))
        assert out == references
        assert loaded.translate(sources, decode=DecodeConfig(beam=beam), batch_size=7) == out


def test_results_file_holds_bleu_and_chrf_of_valid_and_test(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(200, 20, 30))
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus, kind="conditioned")
    summary = train(recipe, out=tmp_path / "run", results=tmp_path / "r.json")
    record = json.loads((tmp_path / "r.json").read_text())
    assert record == json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["task"] == "translation" and record["epochs"] == 2
    for split, n in (("valid", 20), ("test", 30)):
        m = record["metrics"][split]
        assert 0 <= m["bleu"] <= 100 and 0 <= m["chrf"] <= 100 and m["sentences"] == n
        assert m["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
        assert "chrf_signature" in m and m["beam"] == 3
    assert [r["kind"] for r in [summary["history"][0]]] == ["valid"]
    assert set(summary["history"][0]) >= {"loss", "ppl"}


@pytest.mark.parametrize("kind", ["plain", "attention"])
def test_resume_continues_exactly(tmp_path, kind):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(200, 20, 20))
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus, kind=kind)
    train(recipe, out=tmp_path / "full")
    train(recipe, out=tmp_path / "cut", overrides=["train.max_steps=7"])
    train(resume=tmp_path / "cut")
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert full["vocab"] == cut["vocab"]
    for name, value in full["model"].items():
        torch.testing.assert_close(cut["model"][name], value, rtol=0, atol=0)


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(100, 10, 10))
    with (corpus / "test.de").open("a") as f:
        f.write("7 ß 7\n")
    with (corpus / "test.en").open("a") as f:
        f.write("7 ß 7\n")
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus)
    from elman.config import read_toml
    from elman.tasks.table import parse_recipe

    parts = translation.TASK.prepare(parse_recipe(read_toml(recipe)))
    assert UNK_ID in parts.vocab.src.encode(["7 ß 7"])[0]


def test_unequal_parallel_files_stop_before_training(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(100, 10, 10))
    with (corpus / "test.en").open("a") as f:
        f.write("1 2\n")
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus)
    with pytest.raises(ElmanError, match=r"test.de has 10 lines, .*test.en has 11"):
        train(recipe, out=tmp_path / "run")
    assert not Path(tmp_path / "run" / "last.pt").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two models of one corpus and subword model (seeds 1 and 2), one with other subwords."""
    root = tmp_path_factory.mktemp("ensemble")
    corpus = write_parallel_corpus(root / "c", sizes=(200, 20, 20))
    recipe = write_translation_recipe(root / "t.toml", corpus)
    for name, extra in (("a", []), ("b", ["train.seed=2"]), ("other", ["data.subword=unigram"])):
        train(recipe, out=root / name, overrides=["train.epochs=1", *extra])
    return {name: root / name for name in ("a", "b", "other")} | {"corpus": corpus}


def test_an_ensemble_translates_with_the_mean_distribution(runs):
    from elman.inference.ensemble import EnsembleModel
    from elman.tasks.loading import load

    lines = (runs["corpus"] / "test.de").read_text().splitlines()
    alone = load(runs["a"], "cpu")
    assert load(runs["a"], "cpu", ensemble=[runs["a"]]).translate(lines) == alone.translate(lines)
    both = load(runs["a"], "cpu", ensemble=[runs["b"]])
    ens = EnsembleModel([both.model, both.ensemble[0].model])
    expected = translate_lines(ens, both.vocab, lines, both.recipe.decode)
    assert both.translate(lines, batch_size=3) == expected
    assert both.capabilities.ensemble


def test_ensemble_evaluation_scores_the_mean_distribution(runs):
    from elman.tasks.loading import load

    alone = load(runs["a"], "cpu").evaluate("test")
    twice = load(runs["a"], "cpu", ensemble=[runs["a"]]).evaluate("test")
    assert twice["bleu"] == alone["bleu"] and twice["loss"] == pytest.approx(alone["loss"])
    both = load(runs["a"], "cpu", ensemble=[runs["b"]]).evaluate("test")
    assert both["sentences"] == 20 and both["loss"] != alone["loss"]


def test_an_ensemble_with_other_subwords_is_refused_in_one_line(runs):
    from elman.tasks.loading import load

    with pytest.raises(ElmanError, match="source subword vocabulary differs") as err:
        load(runs["a"], "cpu", ensemble=[runs["b"], runs["other"]])
    assert str(runs["other"]) in str(err.value) and "\n" not in str(err.value)


def test_translate_nbest_returns_typed_ranked_hypotheses(runs):
    from elman.inference.translate import Translation
    from elman.tasks.loading import load

    loaded = load(runs["a"], "cpu")
    lines = ["1 2 3", "", "4 5"]
    decode = DecodeConfig(beam=4)
    found = loaded.translate_nbest(lines, 4, decode=decode)
    assert [hyps[0].text for hyps in found] == loaded.translate(lines, decode=decode)
    assert all(isinstance(h, Translation) for hyps in found for h in hyps)
    assert len(found[0]) == 4 and found[1] == [Translation("", 0.0, 0, 0.0)]
    with pytest.raises(ElmanError, match="between 1 and the beam size 4"):
        loaded.translate_nbest(lines, 5, decode=decode)
