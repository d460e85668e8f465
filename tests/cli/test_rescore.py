"""`elman rescore`: Moses and Kaldi lists, tuned weights saved and reused, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.cli import main
from elman.data.nbest import read_moses
from tasks.test_rescoring import REFS, refs_file, toy_nbest


@pytest.fixture
def arpa(tmp_path: Path) -> Path:
    train, path = tmp_path / "lm.txt", tmp_path / "lm.arpa"
    train.write_text("\n".join(REFS * 3) + "\n")
    build = ["ngram", "build", "--order", "3", "--smoothing", "addk", "--data", str(train)]
    assert main([*build, "--out", str(path)]) == 0
    return path


def test_tune_save_and_reuse_moses(tmp_path: Path, arpa: Path, capsys) -> None:
    dev, refs = toy_nbest(tmp_path), refs_file(tmp_path)
    weights, best = tmp_path / "w.json", tmp_path / "best.txt"
    rescored = tmp_path / "rescored.nbest"
    args = ["rescore", str(dev), "--lm", str(arpa), "--tune", str(dev), "--refs", str(refs)]
    more = ["--save-weights", str(weights), "--out", str(best), "--nbest-out", str(rescored)]
    assert main([*args, *more]) == 0
    err = capsys.readouterr().err
    assert "bleu on the dev set (4 sentences)" in err and "-> 100.00" in err
    assert best.read_text().splitlines() == REFS
    again = read_moses(rescored)  # the re-scored list reads back, best first, new totals
    assert again.feature_names() == ["fluency", "lm0", "length", "total"]
    for hyps in again.lists.values():
        totals = [h.features["total"] for h in hyps]
        assert totals == sorted(totals, reverse=True)
    assert [hyps[0].text for hyps in again.lists.values()] == REFS
    capsys.readouterr()
    assert main(["rescore", str(dev), "--lm", str(arpa), "--weights", str(weights)]) == 0
    assert capsys.readouterr().out.splitlines() == REFS


def test_without_weights_the_list_keeps_its_ranking(tmp_path: Path, capsys) -> None:
    assert main(["rescore", str(toy_nbest(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [" ".join(r.split()[: len(r.split()) // 2]) for r in REFS]


def test_given_weight_on_the_command_line(tmp_path: Path, capsys) -> None:
    dev = str(toy_nbest(tmp_path))
    assert main(["rescore", dev, "--weight", "total=0", "--weight", "fluency=-1"]) == 0
    assert capsys.readouterr().out.splitlines() == [" ".join(reversed(r.split())) for r in REFS]


def test_kaldi_lists_tuned_on_wer(tmp_path: Path, capsys) -> None:
    text, am, lm, ref = (tmp_path / n for n in ("text", "am", "lm", "ref"))
    utts = [f"utt{i}" for i in range(len(REFS))]
    # the acoustic cost prefers a wrong hypothesis; the LM cost the right one
    text.write_text(
        "".join(f"{u}-1 {r} extra\n{u}-2 {r}\n" for u, r in zip(utts, REFS, strict=True))
    )
    am.write_text("".join(f"{u}-1 10\n{u}-2 10.5\n" for u in utts))
    lm.write_text("".join(f"{u}-1 9\n{u}-2 7\n" for u in utts))
    ref.write_text("".join(f"{u} {r}\n" for u, r in zip(utts, REFS, strict=True)))
    scores = ["--scores", f"am={am}", f"lm={lm}", "--costs"]
    tune = ["--tune", str(text), "--refs", str(ref), "--tune-scores", f"am={am}", f"lm={lm}"]
    assert main(["rescore", str(text), "--format", "kaldi", *scores, *tune, "--metric", "wer"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{u} {r}" for u, r in zip(utts, REFS, strict=True)]
    assert "wer on the dev set" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["{nbest}", "--tune", "{nbest}"], "--tune DEV_NBEST and --refs DEV_REFS go together"),
        (["{nbest}", "--format", "kaldi"], "--format kaldi needs --scores"),
        (["{nbest}", "--scores", "am=x"], "are for --format kaldi"),
        (["{nbest}", "--weight", "total"], "--weight 'total': expected NAME=VALUE"),
        (["{nbest}", "--weight", "total=inf"], "expected NAME=VALUE with a finite number"),
        (["{nbest}", "--weight", "lm0=1"], "weights name lm0"),
        (["{nbest}", "--save-weights", "{tmp}/w.json"], "--save-weights saves what --tune"),
        (["{nbest}", "--weights", "{tmp}/none.json"], "no such weights file"),
        (["{bad}"], "bad.nbest:2: expected 'id ||| hypothesis"),
        (["{tmp}/missing.nbest"], "missing.nbest: no such file"),
        (["{nbest}", "--metric", "ter"], "--metric"),
        (["{nbest}", "--lm", "{nbest}"], "not a model"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys, args, message) -> None:
    bad = tmp_path / "bad.nbest"
    bad.write_text("0 ||| fine ||| x=1 ||| 1\n0 ||| no features\n")
    values = {"nbest": toy_nbest(tmp_path), "bad": bad, "tmp": tmp_path}
    assert main(["rescore", *(a.format(**values) for a in args)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
