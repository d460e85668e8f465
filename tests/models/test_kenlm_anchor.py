"""elman against KenLM's own output: an ARPA file written by ``lmplz`` and the scores KenLM's
``query`` gives it (tests/data/kenlm, made by its make.py), and, where benchmarks/kenlm.sh has
built KenLM into .kenlm/bin, the same comparison run live."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from elman.models.ngram import NgramConfig, NgramLM, read_arpa

DATA = Path(__file__).resolve().parents[1] / "data" / "kenlm"
KENLM = Path(__file__).resolve().parents[2] / ".kenlm" / "bin"
# query sums float32 log10 probabilities and prints about 8 significant digits
TOLERANCE = 1e-4


def query_totals(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence, KenLM query's total log10 p and OOV count (``query -v sentence``)."""
    found = re.findall(r"Total: (\S+) OOV: (\d+)", text)
    return np.array([float(t) for t, _ in found]), np.array([int(o) for _, o in found])


def elman_totals(lm: NgramLM, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = lm.encode(lines)
    logp = lm.score_encoded(enc)
    oov = enc.oov[enc.pos > 0]
    starts = np.r_[0, np.cumsum([len(line.split()) + 1 for line in lines])[:-1]]
    return np.add.reduceat(logp, starts), np.add.reduceat(oov.astype(int), starts)


def lines_of(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def live_lmplz(tmp_path: Path, *options: str) -> tuple[Path, str]:
    """KenLM's ``lmplz OPTIONS`` on the fixture corpus, and ``query -v sentence``'s output of
    its model on the fixture test set (needs .kenlm/bin)."""
    corpus = tmp_path / "corpus.txt"
    shutil.copy(DATA / "corpus.txt", corpus)
    arpa = tmp_path / "k.arpa"
    subprocess.run(
        [str(KENLM / "lmplz"), *options, "-S", "100M", "-T", str(tmp_path), "--text", str(corpus),
         "--arpa", str(arpa)], check=True, capture_output=True,
    )  # fmt: skip
    with (DATA / "test.txt").open() as fin:
        out = subprocess.run(
            [str(KENLM / "query"), "-v", "sentence", str(arpa)],
            stdin=fin, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return arpa, out


def test_elman_reads_lmplz_arpa_and_scores_it_as_kenlm_query_does():
    totals, oovs = query_totals((DATA / "query.txt").read_text())
    lm = read_arpa(DATA / "lmplz.arpa")
    got, got_oovs = elman_totals(lm, lines_of("test.txt"))
    assert len(totals) == len(lines_of("test.txt")) == len(got)
    np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(got_oovs, oovs)
    assert oovs.sum() > 0  # the fixture exercises <unk>


def test_elman_builds_the_model_lmplz_builds():
    corpus = lines_of("corpus.txt")
    lm = NgramLM.build(corpus, NgramConfig(order=3, smoothing="mkn"))
    kenlm = read_arpa(DATA / "lmplz.arpa")
    assert lm.counts() == kenlm.counts()
    totals, _ = query_totals((DATA / "query.txt").read_text())
    got, _ = elman_totals(lm, lines_of("test.txt"))
    np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)
    test = lines_of("test.txt")
    assert lm.perplexity(test).perplexity == pytest.approx(
        kenlm.perplexity(test).perplexity, rel=1e-6
    )


@pytest.mark.skipif(not (KENLM / "lmplz").is_file(), reason="KenLM not built (benchmarks/kenlm.sh)")
def test_live_lmplz_and_query_agree_with_elman(tmp_path):
    arpa, out = live_lmplz(tmp_path, "-o", "4")
    totals, oovs = query_totals(out)
    for lm in (read_arpa(arpa), NgramLM.build(lines_of("corpus.txt"), NgramConfig(order=4))):
        got, got_oovs = elman_totals(lm, lines_of("test.txt"))
        np.testing.assert_allclose(got, totals, atol=TOLERANCE, rtol=0)
        np.testing.assert_array_equal(got_oovs, oovs)
