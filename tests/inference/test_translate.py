"""Translating lines: n-best lists of text with their scores, and the Moses lines they make."""

from __future__ import annotations

import pytest
import torch

from elman.data.nbest import read_moses
from elman.data.subword import SubwordVocab
from elman.errors import ElmanError
from elman.inference.search import DecodeConfig, length_penalty
from elman.inference.translate import (
    Translation,
    moses_lines,
    nbest_ids,
    translate_lines,
    translate_nbest,
)
from elman.models.seq2seq import Seq2Seq, Seq2SeqConfig
from train.mttoy import digit_pairs


@pytest.fixture(scope="module")
def toy() -> tuple[Seq2Seq, SubwordVocab]:
    pairs = digit_pairs(200, seed=1)
    vocab = SubwordVocab.build([s for s, _ in pairs], [t for _, t in pairs], vocab_size=30)
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(
        src_vocab_size=len(vocab.src), tgt_vocab_size=len(vocab.tgt), embedding_dim=8,
        hidden_size=8, attention_size=8,
    )  # fmt: skip
    m = Seq2Seq(cfg).eval()
    with torch.no_grad():
        m.output.weight.mul_(4.0)
    return m, vocab


LINES = ["1 2 3", "", "4 5 6 7 8", "  ", "9 0"]


def test_n_best_of_lines_is_ranked_and_its_first_is_the_one_best(toy):
    m, vocab = toy
    cfg = DecodeConfig(beam=4, length_penalty=0.6)
    found = translate_nbest(m, vocab, LINES, cfg, 4)
    assert translate_lines(m, vocab, LINES, cfg) == [hyps[0].text for hyps in found]
    assert found[1] == found[3] == [Translation("", 0.0, 0, 0.0)]  # blank: not decoded
    for k in (0, 2, 4):
        hyps = found[k]
        assert len(hyps) == 4 and len({h.text for h in hyps}) >= 1
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert h.score == pytest.approx(h.log_prob / length_penalty(h.length, 0.6))
    with pytest.raises(ElmanError, match="n_best must be between 1 and the beam size 4"):
        nbest_ids(m, [[5, 6]], cfg, 5)


def test_moses_lines_are_read_back_by_the_n_best_reader(toy, tmp_path):
    m, vocab = toy
    found = translate_nbest(m, vocab, LINES, DecodeConfig(beam=3), 3)
    rows = [row for k, hyps in enumerate(found) for row in moses_lines(k, hyps)]
    assert rows[0].startswith("0 ||| ") and rows[0].count(" ||| ") == 3
    path = tmp_path / "nbest.txt"
    path.write_text("".join(r + "\n" for r in rows))
    nbest = read_moses(path)
    assert nbest.ids == ["0", "1", "2", "3", "4"]
    for (key, hyps), mine in zip(nbest.lists.items(), found, strict=True):
        assert [h.text for h in hyps] == [" ".join(t.text.split()) for t in mine], key
        for h, t in zip(hyps, mine, strict=True):
            assert set(h.features) == {"logprob", "pieces", "total"}
            assert h.features["logprob"] == pytest.approx(t.log_prob, abs=1e-6)
            assert h.features["pieces"] == t.length
            assert h.features["total"] == pytest.approx(t.score, abs=1e-6)


def test_moses_lines_format_and_escape():
    hyps = [Translation("a dog", -1.25, 3, -0.9375), Translation("x ||| y | z", -2.0, 5, -1.2)]
    assert moses_lines(7, hyps) == [
        "7 ||| a dog ||| logprob=-1.250000 pieces=3 ||| -0.937500",
        "7 ||| x &#124;&#124;&#124; y | z ||| logprob=-2.000000 pieces=5 ||| -1.200000",
    ]
    assert moses_lines(0, [Translation("", 0.0, 0, 0.0)]) == [
        "0 |||  ||| logprob=0.000000 pieces=0 ||| 0.000000"
    ]
