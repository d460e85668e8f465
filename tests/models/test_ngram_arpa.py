"""ARPA files: exact round trip, fixed-point values made by NumPy, reading files written by
other tools, and the one-line errors for malformed files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from elman.errors import ElmanError
from elman.models.ngram import SMOOTHINGS, NgramConfig, NgramLM, read_arpa, write_arpa
from elman.models.ngram.arpa_lines import fixed_point
from elman.models.ngram.counts import NgramWarning

LINES = ["a b c a", "b c", "c a b b", "a", "b a c c a b"]


@pytest.mark.parametrize("method, order", [(m, 3) for m in SMOOTHINGS] + [("mkn", 7)])
def test_round_trip_keeps_every_number(tmp_path, method, order):
    with warnings.catch_warnings():  # order 7: the 7-gram section is empty
        warnings.simplefilter("ignore", NgramWarning)
        lm = NgramLM.build(LINES, NgramConfig(order=order, smoothing=method))
    path = tmp_path / "m.arpa"
    write_arpa(lm, path, decimals=None)
    back = read_arpa(path)
    assert back.vocab == lm.vocab and back.counts() == lm.counts()
    ours_all, theirs_all = lm.keys + lm.logp + lm.logbo, back.keys + back.logp + back.logbo
    for ours, theirs in zip(ours_all, theirs_all, strict=True):
        assert np.array_equal(ours, theirs)
    write_arpa(back, tmp_path / "again.arpa", decimals=None)
    assert (tmp_path / "again.arpa").read_text() == path.read_text()
    test = ["a b c", "c c zebra"]
    assert np.array_equal(back.log10probs(test), lm.log10probs(test))


def _python_fixed(x: float, decimals: int) -> str:
    """The independent reference: Python's own formatting, without the sign of a zero."""
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


@pytest.mark.parametrize("decimals", [1, 4, 8, 12])
def test_fixed_point_text_is_pythons_formatting(decimals):
    rng = np.random.default_rng(decimals)
    # whole multiples of 10^-decimals plus a fraction kept away from the halfway point, so
    # that rounding has one answer; magnitudes from 1e-9 to 1e5, both signs, and exact values
    steps = rng.integers(0, 10 ** rng.integers(0, 10, 3000))
    away = rng.choice([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], 3000)
    values = np.concatenate([
        (steps + away) / 10**decimals * rng.choice([-1.0, 1.0], 3000),
        [0.0, -0.0, -99.0, -100.0, 0.5, -0.25, 1e5, -1e-12, 10.0, -1.0],
    ])  # fmt: skip
    values = values[np.abs(values) < 1e9]
    text, start, length = fixed_point(values, decimals, b"\t")
    ours = [bytes(text[i, start[i] : start[i] + length[i]]).decode() for i in range(len(values))]
    assert ours == [_python_fixed(x, decimals) + "\t" for x in values.tolist()]


def test_fast_file_equals_the_exact_one_within_its_decimals(tmp_path):
    lm = NgramLM.build(LINES + ["é ü a", "b é"], NgramConfig(order=4, smoothing="mkn"))
    write_arpa(lm, tmp_path / "fast.arpa")  # the default: 8 decimals
    write_arpa(lm, tmp_path / "exact.arpa", decimals=None)
    fast = (tmp_path / "fast.arpa").read_text(encoding="utf-8").splitlines()
    exact = (tmp_path / "exact.arpa").read_text(encoding="utf-8").splitlines()
    assert len(fast) == len(exact)
    for ours, theirs in zip(fast, exact, strict=True):
        a, b = ours.split("\t"), theirs.split("\t")
        if len(b) == 1:  # header, section and blank lines
            assert ours == theirs
            continue
        assert a[1] == b[1] and len(a) == len(b)  # the words; a weight where one is written
        for x, y in zip([a[0], *a[2:]], [b[0], *b[2:]], strict=True):
            assert x == _python_fixed(float(y), 8)
    back = read_arpa(tmp_path / "fast.arpa")
    test = ["a b c", "c c zebra", "é a"]
    np.testing.assert_allclose(back.log10probs(test), lm.log10probs(test), rtol=0, atol=5e-8)


def test_values_fixed_point_cannot_write_are_written_exactly(tmp_path):
    lm = NgramLM.build(LINES, NgramConfig(order=2, smoothing="ml"))
    lm.logp[1][0] = -math.inf  # e.g. a model read from a file that lists probability 0
    write_arpa(lm, tmp_path / "m.arpa")
    assert "\n-inf\t" in (tmp_path / "m.arpa").read_text()
    assert np.array_equal(read_arpa(tmp_path / "m.arpa").logp[1], lm.logp[1])


# A KenLM-style file (tabs, -99 for <s>, blank lines between sections) with a
# 3-gram whose context is listed and a back-off weight of 0 written out.
KENLM_STYLE = """\
\\data\\
ngram 1=5
ngram 2=4
ngram 3=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.6\t</s>\t0
-0.5\ta\t-0.2
-0.7\tb\t-0.1

\\2-grams:
-0.3\t<s> a\t-0.05
-0.4\ta b\t-0.15
-0.2\tb </s>
-0.9\ta </s>

\\3-grams:
-0.1\t<s> a b
-0.25\ta b </s>

\\end\\
"""


def test_reads_a_kenlm_style_file_and_applies_backoff(tmp_path):
    path = tmp_path / "k.arpa"
    path.write_text(KENLM_STYLE)
    lm = read_arpa(path)
    assert lm.order == 3 and lm.counts() == [5, 4, 2]
    got = lm.log10probs(["a b", "b a", "zebra"])
    expected = [
        -0.3,  # p(a | <s>)
        -0.1,  # p(b | <s> a)
        -0.25,  # p(</s> | a b)
        -0.5 + -0.7,  # p(b | <s>) = b(<s>) p(b)
        -0.1 + -0.5,  # p(a | <s> b): <s> b unlisted, then b(b) p(a)
        -0.9,  # p(</s> | b a): b a unlisted (weight 1), then p(</s> | a)
        -0.5 + -1.0,  # p(<unk> | <s>) = b(<s>) p(<unk>)
        -0.6,  # p(</s> | <s> <unk>): unlisted contexts, weights 0
    ]
    assert np.allclose(got, expected, atol=1e-12)
    r = lm.perplexity(["zebra"])
    assert r.oovs == 1 and r.perplexity_no_oov == pytest.approx(10**0.6)


def test_reads_srilm_style_spaces_and_adds_missing_unk(tmp_path):
    path = tmp_path / "s.arpa"
    path.write_text(
        "written by a tool\n\n\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n"
        "-99 <s> -0.3\n-0.3 </s>\n-0.3 x -0.1\n\n\\2-grams:\n-0.1 <s> x\n\n\\end\\\n"
    )
    with pytest.warns(NgramWarning, match="no <unk>"):
        lm = read_arpa(path)
    assert lm.vocab[-1] == "<unk>" and lm.logp[0][lm.unk_id] == -100.0
    assert lm.log10probs(["x"]) == pytest.approx([-0.1, -0.1 + -0.3])
    assert lm.probs(["<s>"])[lm.index["x"]] == pytest.approx(10**-0.1)


def _broken(tmp_path, text: str) -> str:
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ElmanError) as err:
        read_arpa(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


GOOD = KENLM_STYLE.splitlines()


@pytest.mark.parametrize(
    "lineno, replacement, expected",
    [
        (9, "-0.6\t</s>\textra\tfields", "bad.arpa:9: expected a 1-gram entry"),
        (11, "minus-one\tb\t-0.1", "bad.arpa:11: expected numbers"),
        (14, "-0.3\t<s> zebra\t-0.05", "bad.arpa:14: expected a 2-gram made of words listed"),
        (20, "-0.1\tb a b", "bad.arpa:20: expected a 3-gram whose first 2 words are a listed"),
        (15, "-0.3\t<s> a\t-0.05", "bad.arpa:15: expected each 2-gram once"),
        (3, "ngram 3=x", "bad.arpa:3: expected 'ngram 2=<count>'"),
        (13, "\\2-gram:", "bad.arpa:13: expected '\\2-grams:'"),
        (23, "\\the end", "bad.arpa:23: expected '\\end\\'"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, lineno, replacement, expected):
    lines = list(GOOD)
    assert lines[lineno - 1]  # replacing an existing line
    lines[lineno - 1] = replacement
    assert expected in _broken(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "lineno, replacement, expected",
    [
        (10, "nan\ta\t-0.2", "bad.arpa:10: log10 probability nan is not"),
        (10, "nan a -0.2", "bad.arpa:10: log10 probability nan is not"),  # the general parser
        (10, "0.5\ta\t-0.2", "bad.arpa:10: log10 probability 0.5 is not"),
        (10, "1e-9\ta\t-0.2", "bad.arpa:10: log10 probability 1e-09 is not"),
        (11, "inf\tb\t-0.1", "bad.arpa:11: log10 probability inf is not"),
        (20, "NaN\t<s> a b", "bad.arpa:20: log10 probability nan is not"),
        (15, "-0.4\ta b\tnan", "bad.arpa:15: back-off weight nan is not a finite number"),
        (15, "-0.4\ta b\t-inf", "bad.arpa:15: back-off weight -inf is not a finite number"),
        (8, "-99\t<s>\tinf", "bad.arpa:8: back-off weight inf is not a finite number"),
    ],
)
def test_values_that_are_not_probabilities_are_refused(tmp_path, lineno, replacement, expected):
    lines = list(GOOD)
    lines[lineno - 1] = replacement
    message = _broken(tmp_path, "\n".join(lines) + "\n")
    assert expected in message and "rebuild it" in message


def test_kenlm_and_srilm_conventions_are_accepted(tmp_path):
    # -99 and -inf: probability zero; 0: probability one; back-off weights above 1 (log > 0)
    text = (
        KENLM_STYLE.replace("-1.0\t<unk>\t0", "-inf\t<unk>\t0")
        .replace("-0.5\ta\t-0.2", "0\ta\t0.3")
        .replace("-0.1\t<s> a b", "-99\t<s> a b")
    )
    path = tmp_path / "ok.arpa"
    path.write_text(text)
    lm = read_arpa(path)
    assert lm.logp[0][lm.unk_id] == -math.inf and lm.logp[0][lm.index["a"]] == 0.0
    assert lm.logbo[0][lm.index["a"]] == 0.3


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")
@pytest.mark.parametrize("method", SMOOTHINGS)
def test_built_models_have_log_probabilities_at_most_zero(method):
    # interpolated sums can round above 1; the builder keeps log10 p <= 0 (readable again)
    lm = NgramLM.build(LINES * 3, NgramConfig(order=3, smoothing=method))
    assert all((lp <= 0).all() and np.isfinite(lp).all() for lp in lm.logp)
    assert all(np.isfinite(b).all() for b in lm.logbo)


def test_config_refuses_an_infinite_k_and_a_huge_order():
    with pytest.raises(ElmanError, match="finite number > 0, got inf"):
        NgramConfig(smoothing="addk", k=math.inf)
    with pytest.raises(ElmanError, match="finite number > 0, got nan"):
        NgramConfig(smoothing="addk", k=math.nan)
    with pytest.raises(ElmanError, match=r"order must be an integer in 1 … 20, got 1000"):
        NgramConfig(order=1000)


def test_write_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    lm = NgramLM.build(LINES, NgramConfig(order=2, smoothing="kn"))
    path = tmp_path / "m.arpa"
    path.write_text("old model\n")
    monkeypatch.setattr(lm, "counts", lambda: 1 / 0)  # fails after the header began
    with pytest.raises(ZeroDivisionError):
        write_arpa(lm, path)
    assert path.read_text() == "old model\n" and [p.name for p in tmp_path.iterdir()] == ["m.arpa"]


def test_malformed_structure(tmp_path):
    assert "no '\\data\\' line" in _broken(tmp_path, "hello\n")
    short = KENLM_STYLE.replace("ngram 2=4", "ngram 2=5")
    assert "expected 5 2-grams, as the header says" in _broken(tmp_path, short)
    assert "ended after line" in _broken(tmp_path, KENLM_STYLE.replace("\\end\\\n", ""))
    with pytest.raises(ElmanError, match="no such ARPA file"):
        read_arpa(tmp_path / "missing.arpa")
    (tmp_path / "latin1.arpa").write_bytes(KENLM_STYLE.encode().replace(b"<unk>", b"\xe9"))
    with pytest.raises(ElmanError, match="UTF-8"):
        read_arpa(tmp_path / "latin1.arpa")


def test_written_file_is_plain_arpa(tmp_path):
    lm = NgramLM.build(LINES + ["d"], NgramConfig(order=2, smoothing="kn"))
    write_arpa(lm, tmp_path / "m.arpa")
    text = (tmp_path / "m.arpa").read_text().splitlines()
    assert text[1:4] == ["\\data\\", f"ngram 1={lm.counts()[0]}", f"ngram 2={lm.counts()[1]}"]
    assert text[-1] == "\\end\\"
    start = text.index("\\1-grams:") + 1
    unigrams = [line.split("\t") for line in text[start : start + lm.counts()[0]]]
    assert [u[1] for u in unigrams] == lm.vocab
    assert float(unigrams[1][0]) == -99.0  # <s> is never predicted
    total = sum(10 ** float(u[0]) for u in unigrams if u[1] != "<s>")
    assert math.isclose(total, 1.0, rel_tol=1e-7)  # each value to 8 decimals: 1.2e-8 relative
