"""Static interpolation (``elman ngram mix``): the merged back-off model against the models'
own next-word distributions, normalisation, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elman.cli import main
from elman.models.ngram import NgramConfig, NgramLM, read_arpa, read_model
from elman.models.ngram.merge import component_log10probs, dynamic_log10probs, merge

pytestmark = pytest.mark.filterwarnings("ignore:.*small or artificial corpus")

# Two corpora with different vocabularies: "zebra"/"ran" only in B, "mat"/"on" only in A.
A_TEXT = ["the cat sat on the mat", "the dog sat", "a cat saw a dog", "the mat"] * 3
B_TEXT = ["the zebra ran", "a dog ran", "the cat ran to a zebra", "a zebra saw the cat"] * 2
HELD_OUT = ["the cat ran on the mat", "a zebra sat", "the unicorn saw a dog"]


@pytest.fixture(scope="module")
def models() -> tuple[NgramLM, NgramLM]:
    a = NgramLM.build(A_TEXT, NgramConfig(order=3, smoothing="mkn"))
    b = NgramLM.build(B_TEXT, NgramConfig(order=2, smoothing="kn"))
    return a, b


def _mixture(a: NgramLM, b: NgramLM, lam: float, merged: NgramLM, context: list[str]):
    """λ P_a(w | h) + (1 − λ) P_b(w | h) over the merged vocabulary, from each model's own
    next-word distribution; a word a model does not know gets 0 from it."""
    out = np.zeros(merged.vocab_size)
    for lm, weight in ((a, lam), (b, 1.0 - lam)):
        p = lm.probs(context)
        for i, w in enumerate(merged.vocab):
            if w in lm.index:
                out[i] += weight * p[lm.index[w]]
    return out


CONTEXTS = [["<s>"], ["<s>", "the"], ["the", "cat"], ["a", "zebra"], ["on", "unicorn"], ["mat"]]


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_merged_model_is_a_distribution_over_the_union_vocabulary(models, context):
    merged = merge(models, [0.3, 0.7])
    assert set(merged.vocab) == set(models[0].vocab) | set(models[1].vocab)
    assert merged.probs(context).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("context", CONTEXTS)
def test_listed_ngrams_get_exactly_the_dynamic_mixture(models, context):
    a, b = models
    merged = merge(models, [0.3, 0.7])
    want = _mixture(a, b, 0.3, merged, context)
    got = merged.probs(context)
    # the words listed after the context's longest suffix that has listed words are exact
    V = merged.vocab_size
    history = [merged.index.get(w, merged.unk_id) for w in context][-(merged.order - 1) :]
    for m in range(len(history), 0, -1):
        row = merged._context_row(history[-m:])
        keys = merged.keys[m]
        listed = keys[(keys >= row * V) & (keys < (row + 1) * V)] - row * V if row >= 0 else []
        if len(listed):
            np.testing.assert_allclose(got[listed], want[listed], rtol=1e-12)
            break
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12)  # unigrams: all listed
    # unlisted words: the approximation stays within a factor of the dynamic mixture
    assert np.all(got[want > 0] > 0)


def test_a_model_merged_with_itself_is_itself(models):
    a, _ = models
    merged = merge([a, a], [0.5, 0.5])
    np.testing.assert_allclose(merged.log10probs(HELD_OUT), a.log10probs(HELD_OUT), atol=1e-12)
    assert merged.counts() == a.counts()


def test_a_model_of_weight_zero_takes_no_part(models):
    a, b = models
    merged = merge([a, b], [1.0, 0.0])
    assert merged.vocab == a.vocab
    np.testing.assert_allclose(merged.log10probs(HELD_OUT), a.log10probs(HELD_OUT), atol=1e-12)


def test_the_merged_perplexity_is_close_to_the_dynamic_mixtures(models):
    merged = merge(models, [0.5, 0.5])
    dynamic = 10.0 ** -dynamic_log10probs(models, [0.5, 0.5], HELD_OUT).mean()
    static = merged.perplexity(HELD_OUT).perplexity
    assert static == pytest.approx(dynamic, rel=0.15)


def test_a_word_one_model_lacks_gets_zero_from_it(models):
    a, b = models
    scores = component_log10probs(models, ["the zebra"])
    assert scores[0][1] == -np.inf  # "zebra": B's word, unknown to A
    assert np.isfinite(scores[1][1])
    unknown_to_both = component_log10probs(models, ["unicorn"])
    assert all(np.isfinite(s[0]) for s in unknown_to_both)  # <unk> in both


def test_cli_mix_writes_the_merged_model_and_reports_both_mixtures(tmp_path: Path, capsys):
    a_path, b_path, out = tmp_path / "a.arpa", tmp_path / "b.arpa", tmp_path / "ab.arpa"
    for text, path, order in ((A_TEXT, a_path, "3"), (B_TEXT, b_path, "2")):
        corpus = tmp_path / f"{path.stem}.txt"
        corpus.write_text("\n".join(text) + "\n")
        assert (
            main(["ngram", "build", "--order", order, "--data", str(corpus), "--out", str(path)])
            == 0
        )
    held = tmp_path / "held.txt"
    held.write_text("\n".join(HELD_OUT) + "\n")
    capsys.readouterr()
    argv = ["ngram", "mix", str(a_path), str(b_path), "--lambda", "0.4", "--out", str(out)]
    assert main([*argv, "--data", str(held), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["lambda"] == [0.4, pytest.approx(0.6)]
    merged = read_arpa(out)
    assert r["counts"] == merged.counts()
    assert r["merged_perplexity"] == pytest.approx(merged.perplexity(HELD_OUT).perplexity, rel=1e-5)
    models = [read_arpa(a_path), read_arpa(b_path)]
    dynamic = 10.0 ** -dynamic_log10probs(models, [0.4, 0.6], HELD_OUT).mean()
    assert r["dynamic_perplexity"] == pytest.approx(dynamic, rel=1e-12)
    binary = tmp_path / "ab.bin"
    assert main([*argv[:-2], "--out", str(binary), "--binary"]) == 0
    capsys.readouterr()
    # the ARPA file holds each value to 8 decimals, the binary one exactly
    np.testing.assert_allclose(read_model(binary).logp[-1], merged.logp[-1], rtol=0, atol=5e-9)
    # tuned weights: EM on the held-out text can only beat the fixed 0.4/0.6 there
    tuned = tmp_path / "tuned.arpa"
    argv = ["ngram", "mix", str(a_path), str(b_path), "--tune", str(held), "--out", str(tuned)]
    assert main([*argv, "--data", str(held), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert sum(t["lambda"]) == pytest.approx(1.0) and t["tuned_on"] == str(held)
    assert t["dynamic_perplexity"] <= r["dynamic_perplexity"] + 1e-9


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lambda", "0.5", "0.2"], "summing to 1"),
        (["--lambda", "0.2", "0.3", "0.5"], "one weight per model"),
    ],
)
def test_cli_mix_refuses_bad_weights_in_one_line(tmp_path, capsys, extra, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(A_TEXT) + "\n")
    arpa = tmp_path / "a.arpa"
    assert main(["ngram", "build", "--order", "2", "--data", str(corpus), "--out", str(arpa)]) == 0
    capsys.readouterr()
    rc = main(["ngram", "mix", str(arpa), str(arpa), *extra, "--out", str(tmp_path / "m.arpa")])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.arpa").exists()
