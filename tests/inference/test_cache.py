"""The neural cache (Grave et al. 2017): p_cache against a loop over its definition, the
interpolation and its tuning, and ``elman eval --cache`` end to end on a tiny language model."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from elman.cli import main
from elman.data.batching import BPTTStream
from elman.errors import ElmanError
from elman.inference.cache import StateRecorder, cache_probs, mix_cache, tune_cache
from elman.inference.dynamic import DynamicSettings, dynamic_logprobs
from elman.tasks.evaluation import evaluate
from elman.tasks.loading import load
from elman.tasks.results import evaluation_record


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


def test_the_recorder_keeps_the_states_of_the_adapted_model(lm_run):
    """Dynamic evaluation with the cache's recorder scores as plain dynamic evaluation does, and
    keeps the h_t a twin gives when it is stepped by torch.optim.SGD by hand."""
    loaded = load(lm_run, "cpu")
    model = loaded.model
    ids = torch.arange(1, 14) % (len(loaded.vocab) - 1) + 1
    stream = BPTTStream(ids, 1, 4, start_id=loaded.vocab.eos_index)
    plain = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.5)
    recorder = StateRecorder()
    logp = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.5, scores=recorder)
    np.testing.assert_array_equal(logp, plain)
    got = recorder.recorded(logp)
    twin = copy.deepcopy(model)
    twin.eval()
    sgd = torch.optim.SGD(twin.parameters(), lr=0.5)
    state, hs, ys = None, [], []
    for batch in stream:
        sgd.zero_grad()
        h, state = twin.hidden(batch.inputs, state)
        logits = torch.log_softmax(twin.output(h), dim=-1)
        real = batch.targets[:, 0] >= 0
        picked = logits.gather(-1, batch.targets.clamp(min=0).unsqueeze(-1))[:, 0, 0]
        hs.append(h[:, 0][real].detach())
        ys.append(batch.targets[:, 0][real])
        (-picked[real].mean()).backward()
        sgd.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    want_h, want_y = torch.cat(hs), torch.cat(ys)
    assert len(got.targets) == stream.total_tokens == len(want_y)
    torch.testing.assert_close(got.states, want_h, rtol=1e-5, atol=1e-6)
    assert torch.equal(got.targets, want_y)
    static = StateRecorder()
    dynamic_logprobs(model, stream, stream.total_tokens, lr=0.0, scores=static)
    assert not torch.allclose(torch.cat(static.states)[4:], got.states[4:])  # adapted: new h_t
    np.testing.assert_allclose(
        got.probs(5, (0.3,))[0], naive_cache(want_h.numpy(), want_y.numpy(), 5, 0.3), atol=1e-6
    )


def test_the_cache_of_the_adapted_model(lm_run):
    static = evaluate(lm_run, "test", device="cpu", cache=20, cache_theta=0.3, cache_lambda=0.2)
    # rate 0: dynamic evaluation changes nothing, so the cache reads the same states
    zero = evaluate(lm_run, "test", device="cpu", cache=20, cache_theta=0.3, cache_lambda=0.2,
                    dynamic=0.0)  # fmt: skip
    assert static.cache is not None and zero.cache is not None
    assert static.cache.model == "static" and zero.cache.model == "dynamic"
    assert zero.cache.ppl == pytest.approx(static.cache.ppl, rel=1e-6)
    both = evaluate(lm_run, "test", device="cpu", cache=20, cache_theta=0.3, cache_lambda=0.2,
                    dynamic=0.5)  # fmt: skip
    assert both.cache is not None and both.dynamic is not None
    assert both.cache.neural_ppl == pytest.approx(both.dynamic.ppl, rel=1e-12)
    assert both.cache.ppl != pytest.approx(static.cache.ppl, rel=1e-6)
    assert "of the dynamically evaluated model" in both.summary()


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")  # a tiny corpus
def test_cache_dynamic_and_a_mixture_together(lm_run, corpus, tmp_path, capsys):
    from elman.cli.ngram import build

    arpa = tmp_path / "kn3.arpa"
    build(str(corpus), order=3, smoothing="kn", out=arpa)
    results = tmp_path / "r.json"
    argv = ["eval", str(lm_run), "--device", "cpu", "--cache", "20", "--dynamic", "0.5",
            "--mix", str(arpa), "--results", str(results), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cache"]["model"] == "dynamic" and out["cache"]["tuned_on"] == "valid"
    assert out["mix"]["neural_ppl"] == pytest.approx(out["cache"]["ppl"], rel=1e-12)
    assert out["cache"]["neural_ppl"] == pytest.approx(out["dynamic"]["ppl"], rel=1e-12)
    record = json.loads(results.read_text())
    assert record["recipe"] == "lm-run+kn3+cache20+dynamic"
    assert record["metrics"]["test"]["ppl"] == pytest.approx(out["mix"]["ppl"], rel=1e-12)
    # the cache's and the dynamic row's numbers stay in the record, under their names
    assert record["metrics"]["test"]["cache"]["ppl"] == pytest.approx(out["cache"]["ppl"])
    assert record["metrics"]["test"]["dynamic"]["ppl"] == pytest.approx(out["dynamic"]["ppl"])


def test_each_split_is_adapted_once_for_the_cache_and_the_dynamic_row(lm_run, monkeypatch):
    from elman.tasks import lm

    passes: list[str] = []
    adapt = lm.LMTask._adapt

    def counted(self, loaded, dataset, split, settings, scores):
        passes.append(f"{split}@{settings.lr}")
        return adapt(self, loaded, dataset, split, settings, scores)

    monkeypatch.setattr(lm.LMTask, "_adapt", counted)
    evaluation_record(lm_run, device="cpu", cache=20, dynamic=DynamicSettings(0.5))
    # valid and test adapted once each (the cache's pass gives the dynamic row's scores too),
    # and each read once at rate 0 for the static perplexity beside them
    assert sorted(passes) == ["test@0.0", "test@0.5", "valid@0.0", "valid@0.5"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cache", "10", "--cache-lambda", "1"], "--cache-lambda 1: must be in [0, 1)"),
        (["--cache", "10", "--cache-theta", "x"], "--cache-theta 'x': give auto or a number"),
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
