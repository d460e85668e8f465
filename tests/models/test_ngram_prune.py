"""Count pruning and a limited vocabulary (``NgramConfig.prune``, ``limit_vocab``; ``elman ngram
build --prune --limit-vocab``) against KenLM's ``lmplz --prune`` and ``--limit_vocab_file``:
the models lmplz wrote for tests/data/kenlm (its make.py) and, where benchmarks/kenlm.sh has
built KenLM into .kenlm/bin, lmplz run live."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elman.cli import main
from elman.errors import ElmanError
from elman.models.ngram import NgramConfig, NgramLM, read_arpa

from .test_kenlm_anchor import (
    DATA,
    KENLM,
    TOLERANCE,
    elman_totals,
    lines_of,
    live_lmplz,
    query_totals,
)

VOCAB = frozenset((DATA / "vocab.txt").read_text().split())
# the fixture's models (tests/data/kenlm/make.py, PRUNED): lmplz -o 3 with these options
FIXTURES = {
    "prune-011": {"prune": (0, 1, 1)},
    "limit-vocab": {"limit_vocab": VOCAB},
    "prune-112-limit-vocab": {"prune": (1, 1, 2), "limit_vocab": VOCAB},
}


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return lines_of("corpus.txt")


def ngrams(lm: NgramLM) -> list[set[tuple[str, ...]]]:
    """The listed n-grams of each order, as word tuples."""
    out, grams = [], [(w,) for w in lm.vocab]
    out.append(set(grams))
    for keys in lm.keys[1:]:
        grams = [grams[k // lm.vocab_size] + (lm.vocab[k % lm.vocab_size],) for k in keys]
        out.append(set(grams))
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_elman_prunes_as_lmplz(corpus, name):
    lm = NgramLM.build(corpus, NgramConfig(order=3, **FIXTURES[name]))
    kenlm = read_arpa(DATA / f"{name}.arpa")
    assert lm.counts() == kenlm.counts()
    assert ngrams(lm) == ngrams(kenlm)
    totals, oovs = query_totals((DATA / f"{name}.query.txt").read_text())
    test = lines_of("test.txt")
    got, got_oovs = elman_totals(lm, test)
    assert len(got) == len(totals) == len(test)
    np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(got_oovs, oovs)
    assert lm.perplexity(test).perplexity == pytest.approx(
        kenlm.perplexity(test).perplexity, rel=1e-6
    )


def test_the_fixtures_prune_something(corpus):
    full = NgramLM.build(corpus, NgramConfig(order=3)).counts()
    for name in FIXTURES:
        counts = read_arpa(DATA / f"{name}.arpa").counts()
        assert all(c <= f for c, f in zip(counts, full, strict=True)) and counts != full
    # --prune 1 ... prunes words seen once; a limited vocabulary makes its other words OOVs
    limited = NgramLM.build(corpus, NgramConfig(order=3, limit_vocab=VOCAB))
    assert set(limited.vocab) == (VOCAB & set(" ".join(corpus).split())) | {"<unk>", "<s>", "</s>"}
    assert limited.perplexity(lines_of("test.txt")).oovs > 0


def test_discounts_are_the_whole_corpus(corpus):
    full = NgramLM.build(corpus, NgramConfig(order=3))
    pruned = NgramLM.build(corpus, NgramConfig(order=3, prune=(1, 2, 2), limit_vocab=VOCAB))
    assert pruned.discounts == full.discounts


@pytest.mark.parametrize("smoothing", ["kn", "mkn"])
@pytest.mark.parametrize(
    "options", [{"prune": (0, 1)}, {"prune": (1, 1, 3)}, {"limit_vocab": VOCAB}]
)
def test_a_pruned_model_is_normalised(corpus, smoothing, options):
    lm = NgramLM.build(corpus, NgramConfig(order=3, smoothing=smoothing, **options))
    contexts = [["<s>", *line.split()[:k]] for line in corpus[:20] for k in (0, 1, 2)]
    for context in [[], *contexts]:
        p = lm.probs(context)
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p > 0).sum() == lm.vocab_size - 1


def test_no_pruning_is_bit_identical(corpus):
    plain = NgramLM.build(corpus, NgramConfig(order=3))
    for prune in [(), (0,), (0, 0, 0)]:
        same = NgramLM.build(corpus, NgramConfig(order=3, prune=prune))
        for a, b in zip(plain.logp + plain.logbo, same.logp + same.logbo, strict=True):
            np.testing.assert_array_equal(a, b)


def test_higher_thresholds_keep_fewer_ngrams(corpus):
    sizes = [
        NgramLM.build(corpus, NgramConfig(order=3, prune=prune)).counts()
        for prune in [(0,), (0, 0, 1), (0, 1, 1), (0, 1, 2), (0, 2)]
    ]
    for smaller, larger in zip(sizes[1:], sizes, strict=False):
        assert all(s <= g for s, g in zip(smaller, larger, strict=True))
    assert sum(sizes[-1]) < sum(sizes[0])


def test_thresholds_pad_with_their_last_value():
    assert NgramConfig(order=5, prune=(0, 1)).thresholds() == (0, 1, 1, 1, 1)
    assert NgramConfig(order=3).thresholds() == (0, 0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prune": (0, -1)}, "integers >= 0"),
        ({"prune": (0, 1.5)}, "integers >= 0"),
        ({"prune": [0, 1]}, "integers >= 0"),
        ({"prune": (0, 2, 1)}, "non-decreasing"),
        ({"prune": (0, 0, 0, 1)}, "4 thresholds (0 0 0 1) for a 3-gram model"),
        ({"prune": (0, 1), "smoothing": "abs"}, "needs Kneser-Ney smoothing (kn or mkn)"),
        ({"limit_vocab": frozenset({"a"}), "smoothing": "ml"}, "needs Kneser-Ney"),
        ({"limit_vocab": {"a"}}, "frozenset"),
        ({"limit_vocab": frozenset({"<s>", "</s>"})}, "no words"),
    ],
)
def test_bad_pruning_options_are_one_clear_error(options, message):
    with pytest.raises(ElmanError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        NgramConfig(order=3, **options)
    assert "\n" not in str(e.value)


def test_zero_thresholds_go_with_any_smoothing():
    NgramConfig(order=3, smoothing="addk", prune=(0, 0))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_builds_the_model_lmplz_builds(tmp_path, capsys):
    arpa = tmp_path / "m.arpa"
    rc, out, _ = run(
        capsys, "ngram", "build", "--order", "3", "--data", str(DATA / "corpus.txt"),
        "--prune", "1", "1", "2", "--limit-vocab", str(DATA / "vocab.txt"), "--out", str(arpa),
    )  # fmt: skip
    assert rc == 0 and "3-grams" in out
    name = "prune-112-limit-vocab"
    assert read_arpa(arpa).counts() == read_arpa(DATA / f"{name}.arpa").counts()
    got, _ = elman_totals(read_arpa(arpa), lines_of("test.txt"))
    totals, _ = query_totals((DATA / f"{name}.query.txt").read_text())
    np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    data, out = str(DATA / "corpus.txt"), str(tmp_path / "m.arpa")
    base = ("ngram", "build", "--order", "3", "--data", data, "--out", out)
    missing = tmp_path / "nowhere.txt"
    rc, _, err = run(capsys, *base, "--limit-vocab", str(missing))
    assert rc == 2 and err.count("\n") == 1 and f"--limit-vocab {missing}: no such file" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    rc, _, err = run(capsys, *base, "--limit-vocab", str(empty))
    assert rc == 2 and err.count("\n") == 1 and f"{empty}: file is empty" in err
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n")
    rc, _, err = run(capsys, *base, "--limit-vocab", str(blank))
    assert rc == 2 and err.count("\n") == 1 and "no words" in err
    rc, _, err = run(capsys, *base, "--prune", "0", "2", "1")
    assert rc == 2 and err.count("\n") == 1 and "non-decreasing" in err
    rc, _, err = run(capsys, *base, "--prune", "0", "-1")
    assert rc == 2 and err.count("\n") == 1 and "--prune" in err
    rc, _, err = run(capsys, *base, "--smoothing", "addk", "--prune", "0", "1")
    assert rc == 2 and err.count("\n") == 1 and "Kneser-Ney" in err
    assert not Path(out).exists()


LIVE = [
    ["--prune", "0", "1", "1", "2"],
    ["--prune", "0", "0", "1", "--limit_vocab_file", str(DATA / "vocab.txt")],
]


@pytest.mark.skipif(not (KENLM / "lmplz").is_file(), reason="KenLM not built (benchmarks/kenlm.sh)")
@pytest.mark.parametrize("options", LIVE, ids=["prune-0112", "prune-001-limit-vocab"])
def test_live_lmplz_prunes_as_elman_at_order_4(tmp_path, corpus, options):
    arpa, out = live_lmplz(tmp_path, "-o", "4", *options)
    totals, oovs = query_totals(out)
    prune = tuple(int(x) for x in options[1 : options.index("--limit_vocab_file")]) if (
        "--limit_vocab_file" in options
    ) else tuple(int(x) for x in options[1:])  # fmt: skip
    limit = VOCAB if "--limit_vocab_file" in options else None
    lm = NgramLM.build(corpus, NgramConfig(order=4, prune=prune, limit_vocab=limit))
    kenlm = read_arpa(arpa)
    assert lm.counts() == kenlm.counts() and ngrams(lm) == ngrams(kenlm)
    got, got_oovs = elman_totals(lm, lines_of("test.txt"))
    np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(got_oovs, oovs)
