"""Entropy-based pruning (``elman ngram prune``, Stolcke 1998): the vectorised relative
entropy against a brute-force one, what each threshold keeps, normalisation, and the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from elman.cli import main
from elman.models.ngram import NgramConfig, NgramLM, read_arpa, read_model
from elman.models.ngram.backoff import ngram_words
from elman.models.ngram.entropy import prune_entropy, relative_entropies

pytestmark = pytest.mark.filterwarnings("ignore:.*small or artificial corpus")

KENLM = Path(__file__).resolve().parent.parent / "data" / "kenlm"
# ten words: the cat sat on mat dog a saw ran big
TINY = ["the cat sat on the mat", "the dog sat", "a cat saw a dog", "the big dog ran", "the mat"]
THRESHOLDS = [0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]


def lines(name: str) -> list[str]:
    return (KENLM / name).read_text().splitlines()


@pytest.fixture(scope="module")
def tiny() -> NgramLM:
    return NgramLM.build(TINY * 2, NgramConfig(order=3, smoothing="mkn"))


@pytest.fixture(scope="module")
def corpus3() -> NgramLM:
    return NgramLM.build(lines("corpus.txt"), NgramConfig(order=3, smoothing="mkn"))


# --- the relative entropy, by brute force ---------------------------------------------
def history_prob(lm: NgramLM, h: list[int]) -> float:
    """P(h) by the chain rule with next_probs; p(</s>) for a first <s> (SRILM)."""
    first = lm.eos_id if h[0] == lm.bos_id else h[0]
    prob = lm.next_probs([])[first]
    for i in range(1, len(h)):
        prob *= lm.next_probs(h[:i])[h[i]]
    return float(prob)


def without(lm: NgramLM, n: int, row: int) -> NgramLM:
    """``lm`` without the n-gram at ``row`` of order n, its context's back-off weight
    recomputed in plain Python from the listed words' probabilities."""
    V = lm.vocab_size
    words = ngram_words(lm.keys[1:], V)[n - 1]
    h, w = list(words[row, :-1]), int(words[row, -1])
    same = np.flatnonzero(lm.keys[n - 1] // V == lm.keys[n - 1][row] // V)
    others = [int(r) for r in same if r != row]
    lower = lm.next_probs(h[1:])
    num = 1.0 - sum(10.0 ** lm.logp[n - 1][r] for r in others)
    den = 1.0 - sum(lower[int(words[r, -1])] for r in others)
    keys = [k.copy() for k in lm.keys[1:]]
    logp = [p.copy() for p in lm.logp]
    logbo = [b.copy() for b in lm.logbo]
    keys[n - 2] = np.delete(keys[n - 2], row)
    logp[n - 1] = np.delete(logp[n - 1], row)
    if n < lm.order:  # rows after it move up by one: so do the keys that name them
        assert not np.any(keys[n - 1] // V == row), "a context: not removable alone"
        keys[n - 1] = np.where(keys[n - 1] // V > row, keys[n - 1] - V, keys[n - 1])
        logbo[n - 1] = np.delete(logbo[n - 1], row)
    logbo[n - 2][lm.keys[n - 1][row] // V] = math.log10(num / den)
    pruned = NgramLM(lm.vocab, keys, logp, logbo)
    tol = 1e-12 if lm.discounts else 1e-6  # built here, or read from lmplz's float32 values
    assert pruned.next_probs(h).sum() == pytest.approx(1.0, abs=tol)
    assert pruned.next_probs(h)[w] == pytest.approx(num / den * lower[w], rel=1e-12)
    return pruned


def brute_force_d(lm: NgramLM, n: int, row: int) -> float:
    """Σ_h P(h) Σ_w p(w|h) log(p(w|h)/p′(w|h)) over every listed (n−1)-gram h, all words."""
    pruned = without(lm, n, row)
    total = 0.0
    for h in ngram_words(lm.keys[1:], lm.vocab_size)[n - 2]:
        p, q = lm.next_probs(list(h)), pruned.next_probs(list(h))
        nz = p > 0
        total += history_prob(lm, list(h)) * float(np.sum(p[nz] * np.log(p[nz] / q[nz])))
    return total


def removable(lm: NgramLM, n: int) -> list[int]:
    if n == lm.order:
        return list(range(len(lm.logp[n - 1])))
    contexts = set((lm.keys[n] // lm.vocab_size).tolist())
    return [r for r in range(len(lm.logp[n - 1])) if r not in contexts]


@pytest.mark.parametrize("n", [2, 3])
def test_relative_entropy_equals_the_brute_force_one(tiny, n):
    d = relative_entropies(tiny)[0][n - 2]
    rows = removable(tiny, n)
    assert len(rows) >= 4
    for row in rows:
        assert d[row] == pytest.approx(brute_force_d(tiny, n, row), abs=1e-12)
        assert d[row] >= -1e-15


def test_relative_entropy_of_a_model_read_from_arpa_equals_the_brute_force_one():
    lm = read_arpa(KENLM / "lmplz.arpa")
    d = relative_entropies(lm)[0][1]  # orders 2, 3: the trigrams
    for row in range(0, len(d), 419):  # a spread of ten trigrams
        assert d[row] == pytest.approx(brute_force_d(lm, 3, row), abs=1e-12)


# --- what a threshold keeps -------------------------------------------------------------
def as_tuples(lm: NgramLM, n: int) -> set[tuple[int, ...]]:
    return set(map(tuple, ngram_words(lm.keys[1:], lm.vocab_size)[n - 1].tolist()))


def test_threshold_zero_keeps_the_model_bit_for_bit(corpus3):
    pruned = prune_entropy(corpus3, 0.0)
    for a, b in zip(corpus3.keys + corpus3.logp + corpus3.logbo,
                    pruned.keys + pruned.logp + pruned.logbo, strict=True):  # fmt: skip
        assert np.array_equal(a, b)
    test = lines("test.txt")
    assert np.array_equal(corpus3.log10probs(test), pruned.log10probs(test))


def test_a_huge_threshold_keeps_only_the_unigrams(corpus3):
    assert prune_entropy(corpus3, 1e300).counts() == [corpus3.vocab_size, 0, 0]


@pytest.mark.parametrize("threshold", [1e-6, 1e-5, 1e-4])
def test_pruned_are_the_small_entropies_that_no_longer_ngram_needs(corpus3, threshold):
    d = relative_entropies(corpus3)[0]
    pruned = prune_entropy(corpus3, threshold)
    V = corpus3.vocab_size
    for n in (3, 2):
        words = ngram_words(corpus3.keys[1:], V)[n - 1].tolist()
        small = {
            tuple(w) for w, x in zip(words, d[n - 2], strict=True) if math.exp(x) - 1 < threshold
        }
        needed = {g[:-1] for g in as_tuples(pruned, n + 1)} if n < 3 else set()
        assert as_tuples(pruned, n) == as_tuples(corpus3, n) - (small - needed)
        assert small - needed, "something is pruned"
    assert np.array_equal(pruned.logp[0], corpus3.logp[0])


@pytest.mark.parametrize("threshold", [1e-6, 1e-5, 1e-4, 1e-3])
def test_the_pruned_model_is_normalised(corpus3, threshold):
    lm = prune_entropy(corpus3, threshold)
    rng = np.random.default_rng(0)
    histories = [[lm.bos_id], [lm.bos_id, 5], [3, 4]]
    for n in (2, 3):  # listed contexts of the pruned model, and their extensions
        words = ngram_words(lm.keys[1:], lm.vocab_size)[n - 2]
        histories += [list(h) for h in words[rng.choice(len(words), 30)]]
    histories += [list(rng.integers(0, lm.vocab_size, 2)) for _ in range(30)]  # mostly unlisted
    for h in histories:
        assert lm.next_probs(h).sum() == pytest.approx(1.0, abs=1e-12)


def test_sizes_shrink_and_training_perplexity_grows_with_the_threshold(corpus3):
    # Entropy pruning bounds the change of the model's own entropy: the training text's
    # perplexity grows. (On this synthetic corpus the 3-gram overfits, so held-out perplexity
    # falls as it is pruned; PTB's below grows.)
    train = lines("corpus.txt")
    models = [prune_entropy(corpus3, t) for t in THRESHOLDS]
    sizes = [sum(m.counts()) for m in models]
    ppl = [m.perplexity(train).perplexity for m in models]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert ppl == sorted(ppl) and ppl[0] < ppl[-1]
    assert all(m.counts()[0] == corpus3.vocab_size for m in models)  # unigrams never go


@pytest.mark.data
def test_held_out_perplexity_grows_with_the_threshold_on_ptb():
    root = os.environ.get("ELMAN_DATA")
    if not root or not (Path(root) / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ELMAN_DATA with ptb/ is not available")
    from elman.data.datasets import resolve

    ptb = resolve("ptb")
    lm = NgramLM.build(ptb.lines("train")[:10000], NgramConfig(order=3))
    valid = ptb.lines("valid")
    ppl = [prune_entropy(lm, t).perplexity(valid).perplexity for t in (0, 1e-8, 1e-7, 1e-6, 1e-5)]
    assert ppl == sorted(ppl) and ppl[0] < ppl[-1]


def test_a_model_read_from_arpa_prunes_too(corpus3):
    lm = read_arpa(KENLM / "lmplz.arpa")  # lmplz's own 3-gram of the same corpus
    pruned = prune_entropy(lm, 1e-5)
    assert sum(pruned.counts()) < sum(lm.counts())
    assert pruned.counts()[0] == lm.counts()[0]
    for h in ([lm.bos_id], [lm.bos_id, 7], [10, 11], [12]):
        assert pruned.next_probs(h).sum() == pytest.approx(1.0, abs=1e-6)  # float32 file
    # it prunes the same n-grams as elman's own build of that corpus, give or take rounding
    mine = prune_entropy(corpus3, 1e-5).counts()
    assert all(abs(a - b) <= 0.02 * b for a, b in zip(pruned.counts(), mine, strict=True))


# --- the command line ---------------------------------------------------------------------
def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("binary", [False, True])
def test_prune_end_to_end(tmp_path, capsys, binary):
    model = str(KENLM / "lmplz.arpa")
    out = str(tmp_path / ("p.bin" if binary else "p.arpa"))
    argv = ["ngram", "prune", model, "--threshold", "1e-5", "--out", out, "--json"]
    rc, text, _ = run(capsys, *argv, *(["--binary"] if binary else []))
    r = json.loads(text)
    assert rc == 0 and r["counts_before"] == [761, 3267, 4189]
    pruned = read_model(out)
    assert pruned.counts() == r["counts"] == prune_entropy(read_arpa(model), 1e-5).counts()
    rc, text, _ = run(capsys, "ngram", "eval", out, "--data", str(KENLM / "test.txt"), "--json")
    assert rc == 0 and json.loads(text)["perplexity"] == pytest.approx(
        pruned.perplexity(lines("test.txt")).perplexity
    )
    rc, text, _ = run(capsys, "ngram", "prune", model, "--threshold", "1e-5", "--out", out)
    assert rc == 0 and "3-grams      4189 ->" in text


@pytest.mark.parametrize(
    "threshold, message",
    [("=-1e-7", "finite number >= 0"), (" -1e-7", "expected one argument"),
     ("nan", "finite number"), ("inf", "finite number"), ("x", "expected a finite number")],
)  # fmt: skip
def test_bad_thresholds_are_one_error_line(tmp_path, capsys, threshold, message):
    given = (
        ["--threshold" + threshold] if threshold[0] == "=" else ["--threshold", threshold.strip()]
    )
    argv = [str(KENLM / "lmplz.arpa"), *given, "--out", str(tmp_path / "o")]
    rc, _, err = run(capsys, "ngram", "prune", *argv)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_a_missing_model_is_one_error_line(tmp_path, capsys):
    argv = ["ngram", "prune", str(tmp_path / "none.arpa"), "--threshold", "1e-7"]
    rc, _, err = run(capsys, *argv, "--out", str(tmp_path / "o.arpa"))
    assert rc == 2 and "none.arpa" in err and len(err.strip().splitlines()) == 1


def test_the_python_function_refuses_bad_thresholds(corpus3):
    from elman.errors import ElmanError

    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ElmanError, match="threshold"):
            prune_entropy(corpus3, bad)
