"""Tagging metrics against counts done by hand."""

from __future__ import annotations

import math

import pytest

from elman.tasks.tagging_metrics import accuracy, format_report, report

GOLD = [["DET", "NOUN", "VERB"], ["NOUN", "VERB"]]
PRED = [["DET", "VERB", "VERB"], ["NOUN", "VERB"]]
FORMS = [["the", "zork", "ran"], ["dogs", "bark"]]


def test_accuracy_overall_and_on_unseen_words():
    m = accuracy(GOLD, PRED, FORMS, known={"the", "ran", "dogs", "bark"})
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["unseen_words"] == 1 and m["unseen_accuracy"] == 0.0  # zork: NOUN tagged VERB
    assert math.isnan(
        accuracy(GOLD, PRED, FORMS, known={w for s in FORMS for w in s})["unseen_accuracy"]
    )


def test_per_tag_precision_recall_f1_and_confusions():
    rep = report(GOLD, PRED)
    # NOUN: gold 2, predicted 1, right 1; VERB: gold 2, predicted 3, right 2; DET 1/1/1
    assert rep["per_tag"]["NOUN"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    v = rep["per_tag"]["VERB"]
    assert (v["precision"], v["recall"]) == pytest.approx((2 / 3, 1.0))
    assert v["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert rep["confusion"] == {
        "DET -> DET": 1,
        "NOUN -> NOUN": 1,
        "NOUN -> VERB": 1,
        "VERB -> VERB": 2,
    }
    text = format_report(rep)
    assert "confusion" in text and "NOUN -> VERB" in text
