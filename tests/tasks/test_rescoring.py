"""Re-ranking n-best lists and tuning their weights on a toy dev set (BLEU and WER)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sacrebleu import corpus_bleu

from elman.data.nbest import read_moses, read_references
from elman.errors import ElmanError
from elman.tasks.rescoring import (
    feature_table,
    load_weights,
    metric_stats,
    rerank,
    save_weights,
    start_weights,
    tune,
)
from elman.tasks.scoring import load_scorer

REFS = [
    "the cat sat on the mat",
    "a dog ran to the big red house",
    "the big cat ran on a red mat",
    "a red dog sat on the mat",
]


def toy_nbest(tmp_path: Path) -> Path:
    """The decoder prefers a short, truncated hypothesis; the full one is second and has a
    better `fluency` feature: a positive length or fluency weight recovers it."""
    lines = []
    for i, ref in enumerate(REFS):
        words = ref.split()
        short = " ".join(words[: len(words) // 2])
        lines.append(f"{i} ||| {short} ||| fluency= -9 ||| -1.0")
        lines.append(f"{i} ||| {ref} ||| fluency= -2 ||| -1.5")
        lines.append(f"{i} ||| {' '.join(reversed(words))} ||| fluency= -20 ||| -1.6")
    path = tmp_path / "dev.nbest"
    path.write_text("\n".join(lines) + "\n")
    return path


def refs_file(tmp_path: Path) -> Path:
    path = tmp_path / "dev.ref"
    path.write_text("\n".join(REFS) + "\n")
    return path


@pytest.mark.filterwarnings("ignore:no weight for")
def test_given_weights_pick_the_expected_hypothesis(tmp_path: Path) -> None:
    features = feature_table(read_moses(toy_nbest(tmp_path)))
    assert features.names == ["fluency", "total", "length"]
    assert start_weights(features) == {"fluency": 0.0, "total": 1.0, "length": 0.0}
    assert rerank(features, start_weights(features)).tolist() == [0, 0, 0, 0]  # the decoder's
    assert rerank(features, {"total": 1.0, "fluency": 0.2}).tolist() == [1, 1, 1, 1]
    assert rerank(features, {"total": 0.0, "fluency": -1.0}).tolist() == [2, 2, 2, 2]
    # the full and the reversed hypothesis have the same length: the earlier one wins the tie
    assert rerank(features, {"total": 0.0, "length": 1.0}).tolist() == [1, 1, 1, 1]
    with pytest.raises(ElmanError, match="weights name lm0, which the n-best list does not"):
        rerank(features, {"lm0": 1.0})


@pytest.mark.parametrize("metric", ["bleu", "wer"])
def test_tuning_beats_the_baseline(tmp_path: Path, metric: str) -> None:
    nbest = read_moses(toy_nbest(tmp_path))
    refs = read_references(refs_file(tmp_path), nbest)
    features = feature_table(nbest)
    tuned = tune(features, refs, metric)
    best = features.texts(rerank(features, tuned.weights))
    assert best == REFS  # the full hypotheses are the references
    if metric == "bleu":
        assert tuned.tuned == pytest.approx(100.0) and tuned.baseline < 50
        assert tuned.baseline == pytest.approx(
            corpus_bleu(features.texts(rerank(features, start_weights(features))), [REFS]).score
        )
    else:
        assert tuned.tuned == 0.0 and tuned.baseline > 40
    assert all(np.isfinite(w) for w in tuned.weights.values())


def test_tuning_with_a_language_model_feature(tmp_path: Path) -> None:
    """lm0 from an n-gram model of fluent text tells the fluent hypothesis from its reverse
    (equal decoder scores: only the LM separates them)."""
    from elman.cli import main

    arpa, train = tmp_path / "lm.arpa", tmp_path / "train.txt"
    train.write_text("\n".join(REFS * 3) + "\n")
    build = ["ngram", "build", "--order", "3", "--smoothing", "addk", "--data", str(train)]
    assert main([*build, "--out", str(arpa)]) == 0
    text = "".join(
        f"{i} ||| {' '.join(reversed(r.split()))} ||| x=0 ||| -1\n{i} ||| {r} ||| x=0 ||| -1\n"
        for i, r in enumerate(REFS)
    )
    path = tmp_path / "lm.nbest"
    path.write_text(text)
    nbest = read_moses(path)
    features = feature_table(nbest, [load_scorer(arpa)])
    assert features.names == ["x", "total", "lm0", "length"]
    lm0 = features.values[:, :, 2]
    assert (lm0[:, 1] > lm0[:, 0]).all()  # the n-gram prefers the fluent order
    tuned = tune(features, REFS, "bleu")
    assert tuned.weights["lm0"] > 0 and tuned.tuned > tuned.baseline


def test_tuning_does_not_depend_on_a_features_scale(tmp_path: Path) -> None:
    """An LM's log P of a sentence is tens of nats, a decoder's length-normalised score about 1:
    the search runs on features divided by their spread, so multiplying a feature by 100 only
    divides its tuned weight by 100 and picks the same hypotheses."""
    nbest = read_moses(toy_nbest(tmp_path))
    refs = read_references(refs_file(tmp_path), nbest)
    features = feature_table(nbest)
    big = features.values.copy()
    big[..., 0] *= 100.0
    scaled = replace(features, values=big)
    a, b = tune(features, refs, "bleu"), tune(scaled, refs, "bleu")
    assert features.texts(rerank(features, a.weights)) == scaled.texts(rerank(scaled, b.weights))
    name = features.names[0]
    assert b.weights[name] * 100.0 == pytest.approx(a.weights[name])
    assert a.tuned == pytest.approx(b.tuned)


def test_saved_weights_reload(tmp_path: Path) -> None:
    nbest = read_moses(toy_nbest(tmp_path))
    features = feature_table(nbest)
    tuned = tune(features, read_references(refs_file(tmp_path), nbest), "bleu")
    path = tmp_path / "w.json"
    save_weights(path, tuned)
    record = json.loads(path.read_text())
    assert record["metric"] == "bleu" and record["commit"] and record["dev_tuned"] == tuned.tuned
    assert load_weights(path) == tuned.weights
    np.testing.assert_array_equal(
        rerank(features, load_weights(path)), rerank(features, tuned.weights)
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"weights": {"total": NaN}}', "NaN is not JSON"),
        ('{"weights": [1, 2]}', "expected"),
        ('{"weights": {"total": "1"}}', "expected"),
        ("not json", "not a weights file"),
    ],
)
def test_bad_weights_file_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "w.json"
    path.write_text(content)
    with pytest.raises(ElmanError, match=message):
        load_weights(path)


def test_wer_statistics_match_jiwer(tmp_path: Path) -> None:
    import jiwer

    nbest = read_moses(toy_nbest(tmp_path))
    features = feature_table(nbest)
    stats = metric_stats(features, REFS, "wer")
    choice = np.array([0, 1, 2, 0])
    texts = features.texts(choice)
    assert stats.corpus(choice) == pytest.approx(100 * jiwer.wer(REFS, texts))
