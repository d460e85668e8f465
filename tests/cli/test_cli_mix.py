"""`elman eval --mix`: an RNN LM interpolated with an n-gram on the same token stream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elman.cli import main
from elman.data.datasets import resolve
from elman.models.ngram import read_arpa
from elman.tasks.evaluation import evaluate


@pytest.fixture
def trained(tmp_path: Path, recipe: Path, corpus: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run), "--set", "train.progress=false"]) == 0
    arpa = tmp_path / "lm3.arpa"
    assert (
        main(
            [
                "ngram",
                "build",
                "--order",
                "3",
                "--smoothing",
                "mkn",
                "--data",
                str(corpus / "train.txt"),
                "--out",
                str(arpa),
            ]
        )
        == 0
    )
    return run, arpa


def test_mix_tunes_lambda_on_valid_and_never_loses_to_either_model(trained, corpus, capsys):
    run, arpa = trained
    out = evaluate(run, "valid", data=str(corpus), device="cpu", mix=str(arpa)).to_dict()
    m = out["mix"]
    assert m["tuned_on"] == "valid" and 0.0 <= m["lambda"] <= 1.0
    assert m["neural_ppl"] == pytest.approx(out["ppl"], rel=1e-6)  # same tokens, same scores
    ngram_ppl = read_arpa(arpa).perplexity(resolve(str(corpus)).lines("valid")).perplexity
    assert m["ngram_ppl"] == pytest.approx(ngram_ppl, rel=1e-9)
    # λ is tuned on this very split, so the mixture is at least as good as either model alone
    assert m["ppl"] <= min(m["neural_ppl"], m["ngram_ppl"]) * (1 + 1e-9)


def test_mix_with_given_lambda_cli(trained, corpus, capsys):
    run, arpa = trained
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(run),
                "--data",
                str(corpus),
                "--split",
                "test",
                "--mix",
                str(arpa),
                "--lambda",
                "1",
                "--json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["mix"]["lambda"] == 1.0
    assert np.isclose(out["mix"]["ppl"], out["ppl"])  # λ = 1 is the neural model alone


def test_mix_bad_lambda_is_one_line(trained, corpus, capsys):
    run, arpa = trained
    capsys.readouterr()
    code = main(
        [
            "eval",
            str(run),
            "--data",
            str(corpus),
            "--mix",
            str(arpa),
            "--lambda",
            "x",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--lambda" in err[0]
