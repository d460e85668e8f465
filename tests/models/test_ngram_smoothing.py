"""n-gram smoothing: hand-worked Kneser-Ney numbers, a dictionary-based reference
implementation of every method, normalisation, perplexity, sampling and bad input."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from fractions import Fraction as F

import numpy as np
import pytest

from elman.errors import ElmanError
from elman.models.ngram import SMOOTHINGS, NgramConfig, NgramLM
from elman.models.ngram.counts import NgramWarning
from elman.models.ngram.smoothing import METHODS

# Two sentences, worked by hand below for a bigram model.
HAND = ["a b", "b a b"]

# A seeded random corpus with enough repetition for every discount of a trigram model
# to be defined (checked in test_kenlm_discounts_are_defined_here).
_rng = np.random.default_rng(2)
_ZIPF = 1 / np.arange(1, 41) / (1 / np.arange(1, 41)).sum()
CORPUS = [
    " ".join(_rng.choice([f"w{i}" for i in range(40)], size=int(_rng.integers(1, 9)), p=_ZIPF))
    for _ in range(50)
]


def build(lines, order, smoothing, k=1.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NgramWarning)
        return NgramLM.build(lines, NgramConfig(order=order, smoothing=smoothing, k=k))


def p(lm: NgramLM, context: list[str], word: str) -> float:
    return float(lm.probs(context)[lm.index[word]])


# --- worked by hand ---------------------------------------------------------------
# Padded: <s> a b </s> / <s> b a b </s>.  Bigram counts c: <s> a 1, <s> b 1, a b 2,
# b a 1, b </s> 2 -> n1 = 3, n2 = 2, D = 3/7.  Unigram continuation counts
# N1+(. w): a {<s>, b} = 2, b {<s>, a} = 2, </s> {b} = 1 -> n1 = 1, n2 = 2, D = 1/5;
# total 5.  V' = {<unk>, </s>, a, b}: |V'| = 4.
def test_kneser_ney_by_hand():
    lm = build(HAND, 2, "kn")
    gamma0 = F(1, 5) * 3 / 5  # D times the 3 words with a continuation, over 5
    p1 = {
        "a": (2 - F(1, 5)) / 5 + gamma0 / 4,  # 39/100
        "b": (2 - F(1, 5)) / 5 + gamma0 / 4,
        "</s>": (1 - F(1, 5)) / 5 + gamma0 / 4,  # 19/100
        "<unk>": gamma0 / 4,  # 3/100
    }
    assert p1["a"] == F(39, 100) and sum(p1.values()) == 1
    for w, expected in p1.items():
        assert p(lm, [], w) == pytest.approx(float(expected), abs=1e-12)
    d = F(3, 7)
    expected = {
        (("<s>",), "a"): (1 - d) / 2 + d * 2 / 2 * p1["a"],
        (("a",), "b"): (2 - d) / 2 + d / 2 * p1["b"],  # 1217/1400
        (("a",), "a"): d / 2 * p1["a"],  # unseen: back-off weight times p1
        (("b",), "</s>"): (2 - d) / 3 + d * 2 / 3 * p1["</s>"],
        (("b",), "a"): (1 - d) / 3 + d * 2 / 3 * p1["a"],
        (("b",), "<unk>"): d * 2 / 3 * p1["<unk>"],
    }
    assert expected[(("a",), "b")] == F(1217, 1400)
    for (context, w), value in expected.items():
        assert p(lm, list(context), w) == pytest.approx(float(value), abs=1e-12)
    # Perplexity of "a b": p(a|<s>) p(b|a) p(</s>|b) over 3 tokens.
    logs = [math.log10(expected[k]) for k in [(("<s>",), "a"), (("a",), "b"), (("b",), "</s>")]]
    ppl = lm.perplexity(["a b"])
    assert ppl.tokens == 3 and ppl.sentences == 1 and ppl.oovs == 0
    assert ppl.perplexity == pytest.approx(10 ** (-sum(logs) / 3), rel=1e-12)


def test_modified_kneser_ney_by_hand_uses_fallback_discounts():
    # No n-gram of either order has (adjusted) count 3: the discounts are undefined, as
    # in KenLM's BadDiscountException; the fallback D1=0.5, D2=1, D3+=1.5 is used.
    with pytest.warns(NgramWarning, match="cannot estimate modified Kneser-Ney"):
        lm = NgramLM.build(HAND, NgramConfig(order=2, smoothing="mkn"))
    assert lm.discounts == [(0.5, 1.0, 1.5), (0.5, 1.0, 1.5)]
    gamma0 = (F(1, 2) * 1 + 1 * 2) / 5  # one word with a = 1, two with a = 2
    p1 = {"a": (2 - 1) / F(5) + gamma0 / 4, "</s>": (1 - F(1, 2)) / 5 + gamma0 / 4}
    assert p1["a"] == F(13, 40)
    assert p(lm, [], "a") == pytest.approx(float(p1["a"]), abs=1e-12)
    assert p(lm, [], "</s>") == pytest.approx(float(p1["</s>"]), abs=1e-12)
    cases = {
        (("a",), "b"): F(1, 2) + F(1, 2) * p1["a"],  # b has the same p1 as a
        (("b",), "</s>"): F(1, 3) + F(1, 2) * p1["</s>"],
        (("b",), "a"): F(1, 6) + F(1, 2) * p1["a"],
        (("<s>",), "a"): F(1, 4) + F(1, 2) * p1["a"],
    }
    for (context, w), value in cases.items():
        assert p(lm, list(context), w) == pytest.approx(float(value), abs=1e-12)


# --- an independent reference: dictionaries of tuples, the equations read literally ---
class Reference:
    """p(w | h) straight from the docstring equations of elman.models.ngram.smoothing."""

    def __init__(self, lines: list[str], order: int, method: str, k: float = 1.0):
        self.N, self.method, self.k = order, method, k
        raw: Counter = Counter()
        for line in lines:
            toks = ["<s>", *line.split(), "</s>"]
            for n in range(1, order + 1):
                for i in range(len(toks) - n + 1):
                    if toks[i : i + n] != ["<s>"]:
                        raw[tuple(toks[i : i + n])] += 1
        self.words = sorted({w for g in raw for w in g if w != "<s>"} | {"<unk>"})
        if method in ("kn", "mkn"):
            count = {}
            for g, c in raw.items():
                if len(g) == order or g[0] == "<s>":
                    count[g] = c
                else:
                    count[g] = len({h[0] for h in raw if len(h) == len(g) + 1 and h[1:] == g})
        else:
            count = dict(raw)
        self.count = count
        self.discount = {}  # n -> [0, D1, D2, D3+]; KenLM's fallback when undefined
        for n in range(1, order + 1):
            nk = Counter(c for g, c in count.items() if len(g) == n)
            if method == "mkn":
                d = [0.0, 0.5, 1.0, 1.5]
                if nk[1] and nk[2] and nk[3]:
                    y = nk[1] / (nk[1] + 2 * nk[2])
                    est = [0.0] + [j - (j + 1) * y * nk[j + 1] / nk[j] for j in (1, 2, 3)]
                    if all(0 <= est[j] <= j for j in (1, 2, 3)):
                        d = est
                self.discount[n] = d
            else:
                y = nk[1] / (nk[1] + 2 * nk[2]) if nk[1] else 0.5
                self.discount[n] = [0.0, y, y, y]

    def D(self, n: int, c: int) -> float:
        return self.discount[n][min(c, 3)]

    def prob(self, w: str, h: tuple[str, ...]) -> float:
        h = h[len(h) - min(len(h), self.N - 1) :]
        if w == "<s>":
            return 0.0
        n = len(h) + 1
        ext = {g[-1]: c for g, c in self.count.items() if len(g) == n and g[:-1] == h}
        A = sum(ext.values())
        lower = self.prob(w, h[1:]) if h else 1.0 / len(self.words)
        if A == 0:
            return lower
        c = ext.get(w, 0)
        if self.method == "ml":
            return c / A
        if self.method == "addk":
            extra = self.k * len(self.words)
            return (c + extra * lower) / (A + extra)
        alpha = max(c - self.D(n, c), 0.0) / A
        gamma = sum(self.D(n, x) for x in ext.values()) / A
        return alpha + gamma * lower


CONTEXTS = [(), ("<s>",), ("w0",), ("<s>", "w0"), ("w0", "w1"), ("w1", "w0"), ("w3", "w2"),
            ("w0", "w0"), ("<s>", "w5"), ("zebra",), ("w39", "w0"), ("w7", "w9")]  # fmt: skip


@pytest.mark.parametrize("method", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_matches_reference(method, order):
    lm = build(CORPUS, order, method, k=0.5)
    ref = Reference(CORPUS, order, method, k=0.5)
    for context in CONTEXTS:
        got = lm.probs(list(context))
        for w in ref.words:
            expected = ref.prob(w, tuple(c if c in lm.index else "<unk>" for c in context))
            assert got[lm.index[w]] == pytest.approx(expected, abs=1e-12), (context, w)


@pytest.mark.parametrize("method", SMOOTHINGS)
def test_distributions_sum_to_one(method):
    rng = np.random.default_rng(0)
    lm = build(CORPUS, 4, method)
    words = [w for w in lm.vocab if w != "<s>"] + ["never-seen"]
    for _ in range(30):
        length = int(rng.integers(0, 5))
        context = ["<s>"] * int(rng.integers(0, 2)) + list(rng.choice(words, size=length))
        probs = lm.probs(context)
        assert probs[lm.bos_id] == 0.0
        assert abs(probs.sum() - 1.0) < 1e-9, context


def test_kenlm_discounts_are_defined_here():
    ref = Reference(CORPUS, 3, "mkn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NgramWarning)
        lm = NgramLM.build(CORPUS, NgramConfig(order=3, smoothing="mkn"))
    for n in (1, 2, 3):
        assert lm.discounts[n - 1] == pytest.approx(tuple(ref.discount[n][1:]), rel=1e-12)
        assert ref.discount[n] != [0.0, 0.5, 1.0, 1.5]


def test_perplexity_matches_direct_computation():
    lm = build(CORPUS, 3, "mkn")
    ref = Reference(CORPUS, 3, "mkn")
    test = ["w0 w1 w2 w0 w3 w1", "w2 zebra w0", ""]
    logs, oov = [], []
    for line in test:
        toks = ["<s>", *line.split(), "</s>"]
        for i in range(1, len(toks)):
            h = tuple(t if t in lm.index else "<unk>" for t in toks[max(0, i - 2) : i])
            w = toks[i] if toks[i] in lm.index else "<unk>"
            logs.append(math.log10(ref.prob(w, h)))
            oov.append(toks[i] not in lm.index)
    result = lm.perplexity(test)
    assert (result.tokens, result.sentences, result.words, result.oovs) == (12, 3, 9, 1)
    assert result.perplexity == pytest.approx(10 ** (-sum(logs) / len(logs)), rel=1e-10)
    kept = [x for x, o in zip(logs, oov, strict=True) if not o]
    assert result.perplexity_no_oov == pytest.approx(10 ** (-sum(kept) / len(kept)), rel=1e-10)
    assert np.allclose(lm.logprobs(test), np.array(logs) * math.log(10), atol=1e-10)


def test_unk_in_training_text_is_an_ordinary_word():
    lm = build(["a <unk> b", "<unk> b"], 2, "kn")
    assert lm.vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert lm.perplexity(["<unk> b"]).oovs == 0  # a word of the vocabulary
    assert lm.perplexity(["zebra b"]).oovs == 1
    assert p(lm, ["<unk>"], "b") > p(lm, ["a"], "b")


def test_literal_sentence_markers_are_dropped():
    lm = build(["<s> a b </s>", "b </s> a"], 2, "kn")
    assert lm.counts() == build(["a b", "b a"], 2, "kn").counts()
    enc, plain = lm.encode(["a <s> b", "</s>"]), lm.encode(["a b", ""])
    assert np.array_equal(enc.ids, plain.ids) and np.array_equal(enc.pos, plain.pos)


def test_sampling_is_seeded_and_follows_the_model():
    lm = build(CORPUS, 3, "kn")
    a = lm.sample(5, seed=3)
    assert a == lm.sample(5, seed=3)
    assert a != lm.sample(5, seed=4)
    assert all(w in lm.index for line in a for w in line.split())
    ml = build(["x y z"], 3, "ml")  # only one sentence has nonzero probability
    assert ml.sample(3, seed=0) == ["x y z"] * 3
    assert len(lm.sample(1, seed=0, max_words=2)[0].split()) <= 2


def test_bad_input():
    assert SMOOTHINGS == tuple(METHODS)
    with pytest.raises(ElmanError, match="unknown smoothing 'kneser'.*ml, addk, abs, kn, mkn"):
        NgramConfig(smoothing="kneser")
    with pytest.raises(ElmanError, match="no words"):
        NgramLM.build(["", "  "], NgramConfig(order=2))
    with pytest.raises(ElmanError, match="no words"):
        NgramLM.build([], NgramConfig(order=2))
    with pytest.raises(ElmanError, match="order"):
        NgramConfig(order=0)
    with pytest.warns(NgramWarning):  # a one-word corpus: nothing to estimate from
        lm = NgramLM.build(["a"], NgramConfig(order=5, smoothing="mkn"))
    assert lm.counts() == [4, 2, 1, 0, 0]  # no 4- or 5-grams at all
    assert abs(lm.probs(["<s>", "a", "a", "a"]).sum() - 1) < 1e-9
    assert np.isfinite(lm.perplexity(["a a b", "a"]).perplexity)
