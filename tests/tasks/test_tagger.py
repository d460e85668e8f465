"""The tagger task end to end on a toy corpus: overfitting, results, resume, recipe checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elman.errors import ElmanError
from elman.inference.tagging import tag_distributions
from elman.tasks.loading import load
from elman.tasks.tagger import TASK, evaluate_model
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint
from train.tagtoy import write_tagged_corpus, write_tagger_recipe


@pytest.fixture
def tag_recipe(tmp_path: Path) -> Path:
    corpus = write_tagged_corpus(tmp_path / "toy")
    return write_tagger_recipe(tmp_path / "tagger.toml", corpus)


def test_tiny_corpus_is_overfit_to_every_tag(tmp_path, tag_recipe, capsys):
    out = tmp_path / "run"
    summary = train(tag_recipe, out=out, overrides=["train.epochs=12", "train.lr=0.02"])
    assert capsys.readouterr().out.count("accuracy") >= 2  # valid and test lines, not ppl
    loaded = load(out / "best.pt", "cpu")
    m = loaded.evaluate("train", summary["results"]["dataset"], batch_size=16)
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


def write_toy_vectors(path: Path, dim: int = 16) -> Path:
    """Vectors for a few training words, an unseen word ("fox") and a capitalised one."""
    from elman.data.vectors import write_vectors

    words = ["the", "cat", "fox", "Dog", "sat"]
    rng = torch.Generator().manual_seed(0)
    write_vectors(path, words, torch.randn(len(words), dim, generator=rng).numpy())
    return path


def test_pretrained_vectors_start_the_embedding_and_extend_the_vocabulary(tmp_path, tag_recipe):
    from elman.config import read_toml
    from elman.data.vectors import read_vectors
    from elman.tasks.table import parse_recipe

    vec = write_toy_vectors(tmp_path / "toy.vec")
    parts = TASK.prepare(parse_recipe(read_toml(tag_recipe), [f"data.vectors={vec}"]))
    vocab, E = parts.vocab, parts.model.embedding.weight.detach()
    assert "fox" in vocab.words and "fox" not in vocab.training_forms
    plain = TASK.prepare(parse_recipe(read_toml(tag_recipe))).vocab
    assert vocab.training_forms == plain.training_forms
    words, vectors = read_vectors(vec)
    scale = vectors.std()
    for word, row in (("the", 0), ("fox", 2), ("Dog", 3)):
        expected = torch.from_numpy(vectors[row] / scale)
        torch.testing.assert_close(E[vocab.words.stoi[word]], expected)
    assert not E[0].any()  # <pad>


def test_vectors_of_the_wrong_dimension_name_the_file_and_the_fix(tmp_path, tag_recipe):
    vec = write_toy_vectors(tmp_path / "toy.vec", dim=5)
    with pytest.raises(ElmanError, match=r"toy\.vec: vectors of dimension 5.*embedding_dim = 5"):
        train(tag_recipe, out=tmp_path / "x", overrides=[f"data.vectors={vec}"])


def test_a_run_with_vectors_resumes_exactly_and_keeps_the_unseen_metric(tmp_path, tag_recipe):
    vec = write_toy_vectors(tmp_path / "toy.vec")
    overrides = [f"data.vectors={vec}"]
    whole = train(tag_recipe, out=tmp_path / "a", overrides=overrides)
    train(tag_recipe, out=tmp_path / "b", overrides=[*overrides, "train.max_steps=3"])
    train(resume=tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    loaded = TASK.load(a, torch.device("cpu"))
    assert loaded.vocab.train_size < len(loaded.vocab.words)
    plain = train(tag_recipe, out=tmp_path / "c")
    unseen = whole["results"]["metrics"]["test"]["unseen_words"]
    assert unseen == plain["results"]["metrics"]["test"]["unseen_words"]


def test_frozen_vectors_stay_fixed_and_unseen_words_keep_only_them(tmp_path, tag_recipe):
    vec = write_toy_vectors(tmp_path / "toy.vec")
    overrides = [f"data.vectors={vec}", "model.frozen_vectors=true"]
    train(tag_recipe, out=tmp_path / "a", overrides=overrides)
    loaded = load(tmp_path / "a" / "last.pt", "cpu")
    model, stoi = loaded.model, loaded.vocab.words.stoi
    from elman.data.vectors import read_vectors

    _, vectors = read_vectors(vec)
    P, E = model.pretrained, model.embedding.weight.detach()
    torch.testing.assert_close(P[stoi["fox"]], torch.from_numpy(vectors[2] / vectors.std()))
    assert not E[stoi["fox"]].any()  # never in a training batch: its trained part stays zero
    assert E[stoi["the"]].abs().sum() > 0
    with pytest.raises(ElmanError, match="frozen_vectors = true needs data.vectors"):
        train(tag_recipe, out=tmp_path / "b", overrides=["model.frozen_vectors=true"])


def test_an_ensemble_averages_its_members_distributions(tmp_path, tag_recipe):
    from elman.data.tagging import resolve_tagging

    vec = write_toy_vectors(tmp_path / "toy.vec")
    summary = train(tag_recipe, out=tmp_path / "a", overrides=["train.epochs=1"])
    # another seed and pretrained vectors: a larger word vocabulary in another order
    other = ["train.epochs=1", "train.seed=2", f"data.vectors={vec}"]
    train(tag_recipe, out=tmp_path / "b", overrides=other)
    cpu = torch.device("cpu")
    pair = load(tmp_path / "a" / "best.pt", cpu, ensemble=[tmp_path / "b"])
    a, b = (pair.model, pair.vocab), (pair.ensemble[0].model, pair.ensemble[0].vocab)
    assert a[1].words != b[1].words
    corpus = resolve_tagging(summary["results"]["dataset"])
    sentences = [s.forms for s in corpus.sentences("test")] + [[]]
    pa = tag_distributions([a], sentences, 3, cpu)
    pb = tag_distributions([b], sentences, 5, cpu)
    both = tag_distributions([a, b], sentences, 4, cpu)
    for x, y, z in zip(pa, pb, both, strict=True):
        torch.testing.assert_close(z, (x + y) / 2)
    assert both[-1].shape == (0, len(a[1].tags))
    ensemble_tags = pair.tag(sentences, batch_size=2)
    assert ensemble_tags == [a[1].tags.decode(p.argmax(dim=1)) for p in both]
    alone = evaluate_model([a], corpus, "test", 4, cpu)
    twice = evaluate_model([a, a], corpus, "test", 4, cpu)
    assert twice["accuracy"] == alone["accuracy"]
    assert twice["loss"] == pytest.approx(alone["loss"], rel=1e-6)


def test_an_ensemble_of_other_tag_sets_is_refused(tmp_path, tag_recipe):
    train(tag_recipe, out=tmp_path / "a", overrides=["train.epochs=1"])
    train(tag_recipe, out=tmp_path / "x", overrides=["train.epochs=1", "data.column=xpos"])
    with pytest.raises(ElmanError, match="tag set"):
        load(tmp_path / "a" / "best.pt", "cpu", ensemble=[tmp_path / "x"])
