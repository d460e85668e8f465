"""The neural cache (Grave et al. 2017): p_cache against a loop over its definition, the
interpolation and its tuning, and ``elman eval --cache`` end to end on a tiny language model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from elman.cli import main
from elman.errors import ElmanError
from elman.inference.cache import cache_probs, mix_cache, tune_cache
from elman.tasks.evaluation import evaluate


def naive_cache(h: np.ndarray, y: np.ndarray, size: int, theta: float) -> np.ndarray:
    """p_cache(y_t | h_t) by its definition, one position and one stored state at a time."""
    out = np.zeros(len(y))
    for t in range(len(y)):
        past = range(max(0, t - size), t)
        if not past:
            continue
        scores = np.array([theta * float(h[t] @ h[i]) for i in past])
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        out[t] = sum(w for w, i in zip(weights, past, strict=True) if y[i] == y[t])
    return out


@pytest.mark.parametrize("block", [3, 7, 512])
def test_cache_probabilities_follow_the_definition(block):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(40, 6))
    y = rng.integers(0, 5, size=40)
    thetas = [0.3, 1.0]
    got = cache_probs(torch.tensor(h), torch.tensor(y), 6, thetas, block=block).numpy()
    for k, theta in enumerate(thetas):
        np.testing.assert_allclose(got[k], naive_cache(h, y, 6, theta), atol=1e-6)
    assert got[0, 0] == 0.0  # an empty cache


def test_interpolation_and_tuning():
    rng = np.random.default_rng(1)
    model_logp = np.log(rng.uniform(0.01, 0.2, size=200))
    assert np.allclose(mix_cache(model_logp, np.zeros(200), 0.0), model_logp)
    useless = tune_cache(model_logp, np.zeros((1, 200)), 10, thetas=(0.5,))
    assert useless.lam == 0.0 and useless.ppl == pytest.approx(math.exp(-model_logp.mean()))
    helpful = tune_cache(model_logp, np.full((1, 200), 0.9), 10, thetas=(0.5,))
    assert helpful.lam > 0.5 and helpful.ppl < useless.ppl


def test_a_cache_of_weight_zero_is_the_model_itself(lm_run):
    plain = evaluate(lm_run, "test", device="cpu", batch_size=1)
    cached = evaluate(lm_run, "test", device="cpu", cache=20, cache_theta=0.3, cache_lambda=0.0)
    assert cached.cache is not None
    assert cached.cache.neural_ppl == pytest.approx(plain.metrics["ppl"], rel=1e-5)
    assert cached.cache.ppl == pytest.approx(cached.cache.neural_ppl, rel=1e-12)


def test_cli_tunes_theta_and_lambda_on_valid(lm_run, capsys):
    argv = ["eval", str(lm_run), "--cache", "30", "--device", "cpu", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)["cache"]
    assert r["tuned_on"] == "valid" and r["size"] == 30 and 0.0 <= r["lambda"] < 1.0
    assert math.isfinite(r["ppl"]) and r["theta"] > 0


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")  # a tiny corpus
def test_a_mixture_with_a_cache_mixes_the_cached_model(lm_run, corpus, tmp_path):
    from elman.cli.ngram import build

    arpa = tmp_path / "kn3.arpa"
    build(str(corpus), order=3, smoothing="kn", out=arpa)
    both = evaluate(lm_run, "test", device="cpu", mix=str(arpa), cache=20, cache_theta=0.3,
                    cache_lambda=0.2)  # fmt: skip
    assert both.cache is not None and both.mix is not None
    assert both.mix.neural_ppl == pytest.approx(both.cache.ppl, rel=1e-12)
    plain = evaluate(lm_run, "test", device="cpu", mix=str(arpa), lam=both.mix.lam)
    assert plain.mix is not None and plain.mix.neural_ppl != pytest.approx(both.cache.ppl)
    # the tuned λ is the best on valid for the cached scores: a given λ can only match it there
    tuned_valid = evaluate(lm_run, "valid", device="cpu", mix=str(arpa), cache=20,
                           cache_theta=0.3, cache_lambda=0.2)  # fmt: skip
    assert tuned_valid.mix is not None
    for lam in (0.1, 0.5, 0.9):
        given = evaluate(lm_run, "valid", device="cpu", mix=str(arpa), lam=lam, cache=20,
                         cache_theta=0.3, cache_lambda=0.2)  # fmt: skip
        assert given.mix is not None and given.mix.ppl >= tuned_valid.mix.ppl - 1e-6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cache", "10", "--cache-lambda", "1"], "--cache-lambda 1: must be in [0, 1)"),
        (["--cache", "10", "--cache-theta", "x"], "--cache-theta 'x': give auto or a number"),
        (
            ["--cache", "10", "--mix", "m.arpa", "--dynamic", "0.1"],
            "--cache, --dynamic and --mix: the cache reads the static model",
        ),
    ],
)
def test_bad_cache_options_are_one_line(lm_run, capsys, extra, message):
    rc = main(["eval", str(lm_run), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err


def test_a_model_without_a_cache_is_refused_in_one_line(lm_run, monkeypatch):
    from elman.tasks import lm

    monkeypatch.setattr(lm.LMTask, "capabilities", lm.Capabilities(generate=True, mix=True))
    with pytest.raises(ElmanError, match="--cache needs a model that can cache"):
        evaluate(lm_run, "test", device="cpu", cache=5)
