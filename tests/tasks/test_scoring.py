"""elman.tasks.scoring: sentence scores under one convention for n-gram, RNN and NPLM models."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from elman.cli import main
from elman.data.datasets import resolve
from elman.errors import ElmanError
from elman.models.mixture import mix_many, tune_lambda, tune_weights
from elman.models.ngram import read_arpa, write_binary
from elman.tasks.loading import load
from elman.tasks.protocol import Loaded
from elman.tasks.scoring import (
    NeuralScorer,
    build_scorer,
    is_arpa,
    is_model,
    load_scorer,
    parse_mix_lambda,
    score_lines,
)
from elman.tasks.table import TASKS
from train.lmtoy import NPLM_RECIPE

# A hand-written trigram model: every number below is read off it by the ARPA back-off rule.
ARPA = """
\\data\\
ngram 1=5
ngram 2=4
ngram 3=1

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.6\t</s>\t0
-0.4\ta\t-0.2
-0.8\tb\t-0.3

\\2-grams:
-0.2\t<s> a\t-0.1
-0.3\ta b\t-0.05
-0.1\tb </s>
-0.7\tb a

\\3-grams:
-0.15\t<s> a b

\\end\\
"""
# line -> (log10 P(sentence) computed by hand, tokens, OOVs), KenLM query's conventions
BY_HAND = {
    # <s> a: -0.2 | <s> a b: -0.15 | a b </s>: unlisted, bo(a b) -0.05 + p(b </s>) -0.1
    "a b": (-0.2 - 0.15 - 0.15, 3, 0),
    # <s> b: bo(<s>) -0.5 + p(b) -0.8 | b a: -0.7 | a </s>: bo(a) -0.2 + p(</s>) -0.6
    "b a": (-1.3 - 0.7 - 0.8, 3, 0),
    # an empty line is just </s>: bo(<s>) -0.5 + p(</s>) -0.6
    "": (-1.1, 1, 0),
    # zz is <unk> (an OOV): bo(<s>) -0.5 + p(<unk>) -1.0 | p(a) -0.4 | bo(a) -0.2 + -0.6
    "zz a": (-1.5 - 0.4 - 0.8, 3, 1),
    # a literal <unk> gets <unk>'s probability; it is a word of the vocabulary, not an OOV
    # (elman's convention everywhere; KenLM's query would count it)
    "<unk>": (-1.5 - 0.6, 2, 0),
    # <s> and </s> in the text are context markers every line has already: dropped
    "<s> a b </s>": (-0.5, 3, 0),
}


@pytest.fixture
def hand_arpa(tmp_path: Path) -> Path:
    path = tmp_path / "hand.arpa"
    path.write_text(ARPA)
    return path


@pytest.fixture
def lm_run(tmp_path: Path, recipe: Path) -> Path:
    run = tmp_path / "lm-run"
    assert main(["train", str(recipe), "--out", str(run), "--set", "train.progress=false"]) == 0
    return run


@pytest.fixture
def arpa(tmp_path: Path, corpus: Path) -> Path:
    path = tmp_path / "kn3.arpa"
    build = ["ngram", "build", "--order", "3", "--data", str(corpus / "train.txt")]
    assert main([*build, "--out", str(path)]) == 0
    return path


@pytest.fixture
def nplm_run(tmp_path: Path, corpus: Path) -> Path:
    recipe = tmp_path / "nplm.toml"
    recipe.write_text(NPLM_RECIPE.format(corpus=corpus.as_posix()))
    run = tmp_path / "nplm-run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    return run


def test_ngram_sentence_scores_equal_the_hand_computed_ones(hand_arpa: Path) -> None:
    scorer = load_scorer(hand_arpa)
    scores = list(score_lines(scorer, list(BY_HAND)))
    for s, (line, (log10, tokens, oovs)) in zip(scores, BY_HAND.items(), strict=True):
        assert s.log10prob == pytest.approx(log10, abs=1e-12), line
        assert s.logprob == pytest.approx(log10 * math.log(10), abs=1e-12)
        assert (s.tokens, s.oovs) == (tokens, oovs), line
        assert s.ppl == pytest.approx(10 ** (-log10 / tokens))
    zz = scores[3].per_token
    assert zz is not None and zz.tokens == ["zz", "a", "</s>"]
    assert zz.unknown.tolist() == [True, False, False]
    np.testing.assert_allclose(zz.logprobs / math.log(10), [-1.5, -0.4, -0.8], atol=1e-12)


def test_ngram_sentences_sum_to_the_corpus_score(arpa: Path, corpus: Path) -> None:
    """NgramLM starts every line after <s>: the sentence scores sum to its corpus score."""
    lines = resolve(str(corpus)).lines("test")
    scores = list(score_lines(load_scorer(arpa), lines, chunk_size=5))  # chunks change nothing
    corpus_score = read_arpa(arpa).perplexity(lines)
    assert sum(s.log10prob for s in scores) == pytest.approx(corpus_score.log10_prob, rel=1e-12)
    assert sum(s.tokens for s in scores) == corpus_score.tokens
    assert [s.line for s in scores] == list(range(1, len(lines) + 1))


def one_line_corpus(folder: Path, corpus: Path, line: str) -> Path:
    folder.mkdir()
    shutil.copy(corpus / "train.txt", folder / "train.txt")
    for split in ("valid", "test"):
        (folder / f"{split}.txt").write_text(line + "\n")
    return folder


@pytest.mark.parametrize("kind", ["lm", "nplm"])
def test_neural_sentence_equals_a_one_line_corpus(kind, request, tmp_path, corpus) -> None:
    """On a corpus of one line both conventions agree: the corpus starts after an <eos>."""
    run = request.getfixturevalue(f"{kind}_run")
    line = "the cat sat on a big zebra"
    folder = one_line_corpus(tmp_path / "one", corpus, line)
    loaded = load(run, "cpu")
    corpus_logp = loaded.task.token_logprobs(loaded, resolve(str(folder)), "test", batch_size=1)
    (s,) = score_lines(NeuralScorer(loaded), [line])
    assert s.per_token is not None
    np.testing.assert_allclose(s.per_token.logprobs, corpus_logp, rtol=0, atol=1e-5)
    assert s.tokens == 8 and s.oovs == 1  # zebra is unknown
    assert s.per_token.unknown.tolist() == [False] * 6 + [True, False]


def test_neural_chunks_and_batches_change_nothing(lm_run: Path, corpus: Path) -> None:
    lines = ["", *resolve(str(corpus)).lines("test"), "cat " * 300]
    whole = list(score_lines(load_scorer(lm_run, "cpu", batch_size=64), lines))
    alone = list(score_lines(load_scorer(lm_run, "cpu", batch_size=1), lines, chunk_size=1))
    for a, b in zip(whole, alone, strict=True):
        assert (a.line, a.tokens, a.oovs) == (b.line, b.tokens, b.oovs)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
    assert whole[0].tokens == 1 and whole[-1].tokens == 301


def test_mixture_with_lambda_one_and_zero_is_each_model(lm_run, arpa, corpus) -> None:
    lines = resolve(str(corpus)).lines("valid")
    neural = list(score_lines(load_scorer(lm_run, "cpu"), lines))
    ngram = list(score_lines(load_scorer(arpa), lines))
    for lam, alone in (("1", neural), ("0", ngram)):
        mixed = list(score_lines(build_scorer([lm_run, arpa], device="cpu", mix_lambda=lam), lines))
        for m, a in zip(mixed, alone, strict=True):
            assert m.logprob == a.logprob and m.tokens == a.tokens
    half = build_scorer([lm_run, arpa], device="cpu", mix_lambda="0.5")
    for m, a, b in zip(score_lines(half, lines), neural, ngram, strict=True):
        assert a.per_token is not None and b.per_token is not None
        expect = np.logaddexp(a.per_token.logprobs, b.per_token.logprobs) + math.log(0.5)
        assert m.logprob == pytest.approx(float(expect.sum()), abs=1e-9)


def test_tuned_mixture_beats_both_models_on_its_tuning_lines(lm_run, arpa, corpus) -> None:
    lines = resolve(str(corpus)).lines("valid")
    scorer = build_scorer([lm_run, arpa], device="cpu", tune=iter(lines))
    weights = scorer.weights  # type: ignore[attr-defined]
    assert 0 <= weights[0] <= 1 and sum(weights) == pytest.approx(1.0)

    def total(s) -> float:
        return sum(x.logprob for x in score_lines(s, lines))

    assert total(scorer) >= max(total(load_scorer(lm_run, "cpu")), total(load_scorer(arpa)))


def test_three_models_get_equal_weights_unless_given(lm_run, arpa, hand_arpa) -> None:
    scorer = build_scorer([lm_run, arpa, arpa], device="cpu")
    assert scorer.weights == [pytest.approx(1 / 3)] * 3  # type: ignore[attr-defined]
    scorer = build_scorer([lm_run, arpa, arpa], device="cpu", mix_lambda="0.5,0.25,0.25")
    assert scorer.weights == [0.5, 0.25, 0.25]  # type: ignore[attr-defined]


def test_mix_many_and_tune_weights_generalise_the_two_model_functions() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (np.log(rng.uniform(0.01, 1, 200)) for _ in range(3))
    lam = tune_lambda(a, b)
    assert tune_weights([a, b]) == [lam, 1 - lam]
    w = tune_weights([a, b, c])
    assert sum(w) == pytest.approx(1.0) and all(x >= 0 for x in w)
    ll = mix_many([a, b, c], w).sum()
    for other in ([1 / 3] * 3, [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]):
        assert ll >= mix_many([a, b, c], other).sum() - 1e-9  # EM's optimum
    np.testing.assert_array_equal(mix_many([a, b, c], [1.0, 0.0, 0.0]), a)


@pytest.mark.parametrize(
    "text, models, message",
    [
        ("2", 2, "one number in [0, 1]"),
        ("0.5,0.6", 2, "sum to 1.1"),
        ("x", 2, "give auto"),
        ("nan", 2, "give auto"),
        ("0.5", 1, "two or more models"),
        ("0.5", 3, "3 comma-separated"),
    ],
)
def test_bad_mix_lambda_is_one_line(text, models, message) -> None:
    with pytest.raises(ElmanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_mix_lambda(text, models)


def test_a_model_that_is_not_a_language_model_is_refused_in_one_line(tmp_path) -> None:
    tagger = Loaded(TASKS["tagger"], torch.nn.Linear(1, 1), None, None, tmp_path / "t.pt",
                    torch.device("cpu"))  # fmt: skip
    with pytest.raises(ElmanError, match="'tagger' model"):
        NeuralScorer(tagger)


def test_models_are_told_from_text(tmp_path, hand_arpa, lm_run) -> None:
    text = tmp_path / "in.txt"
    text.write_text("a b\n")
    renamed = tmp_path / "model"  # an ARPA file without its extension
    renamed.write_text(ARPA)
    assert is_model(hand_arpa) and is_arpa(renamed) and is_model(renamed)
    assert is_model(lm_run) and is_model(lm_run / "best.pt") and not is_arpa(lm_run)
    assert not is_model(text) and not is_model(tmp_path / "missing.txt")


def test_a_binary_ngram_model_is_a_model_and_scores_as_its_arpa(tmp_path, hand_arpa) -> None:
    """Regression: ``elman score model.bin`` took the binary model for text to score."""
    binary = tmp_path / "model.bin"
    write_binary(read_arpa(hand_arpa), binary)
    assert is_model(binary) and is_arpa(binary)
    lines = ["a b", "b a a"]
    want = load_scorer(hand_arpa).score(lines)
    got = load_scorer(binary).score(lines)
    assert [list(s.logprobs) for s in got] == [list(s.logprobs) for s in want]


def test_character_model_scores_characters_and_is_not_mixed_with_words(
    tmp_path, corpus, arpa
) -> None:
    recipe = tmp_path / "char.toml"
    from train.lmtoy import RECIPE

    text = RECIPE.format(corpus=corpus.as_posix()).replace("bptt = 5", 'bptt = 5\nlevel = "char"')
    recipe.write_text(text)
    run = tmp_path / "char-run"
    assert main(["train", str(recipe), "--out", str(run), "--set", "train.progress=false"]) == 0
    (s,) = score_lines(load_scorer(run, "cpu"), ["the cat"])
    assert s.per_token is not None
    assert s.per_token.tokens == [*"the cat", "</s>"] and s.tokens == 8  # ends at its newline
    with pytest.raises(ElmanError, match="different levels"):
        build_scorer([run, arpa], device="cpu")


def test_a_zero_probability_is_one_line_naming_the_line(tmp_path) -> None:
    path = tmp_path / "zero.arpa"
    path.write_text(ARPA.replace("-0.8\tb\t-0.3", "-inf\tb\t-0.3"))
    with pytest.raises(ElmanError, match=r"line 2: .* token 1 \('b'\)"):
        list(score_lines(load_scorer(path), ["a b </s>", "b"]))  # "a b" has the trigram


@pytest.mark.parametrize("kind", ["lm", "nplm"])
def test_rms_dynamic_scorer_adapts_every_lm_kind(kind, request, corpus) -> None:
    """The RMS rule in elman score, for both neural kinds: rate 0 is the static scores, the first
    line is scored before any step, a repeated line gains, and the weights come back."""
    from elman.inference.dynamic import DynamicSettings
    from elman.tasks.scoring import DynamicScorer

    run = request.getfixturevalue(f"{kind}_run")
    stats = resolve(str(corpus)).lines("train")
    lines = ["the cat sat on a mat"] * 4
    static = [s.logprob for s in score_lines(load_scorer(run, "cpu"), lines)]
    for lr in (0.0, 0.01):
        scorer = build_scorer(
            [run], device="cpu", dynamic=DynamicSettings(lr, 0.02, rule="rms"), dynamic_stats=stats
        )
        assert isinstance(scorer, DynamicScorer)
        before = [p.detach().clone() for p in scorer.base.loaded.model.parameters()]
        got = [s.logprob for s in score_lines(scorer, lines)]
        scorer.restore()
        after = scorer.base.loaded.model.parameters()
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        assert got[0] == pytest.approx(static[0], abs=1e-4)
        if lr == 0.0:
            assert got == pytest.approx(static, abs=1e-4)
        else:
            assert got[3] > got[1] > got[0]
