"""Dynamic evaluation (Krause et al. 2018): each segment scored before the model learns from it,
checked against torch.optim.SGD stepping by hand; the weights restored; ``elman eval
--dynamic`` end to end on a tiny language model."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from elman.cli import main
from elman.data.batching import BPTTStream
from elman.inference.dynamic import Adapter, DynamicSettings, dynamic_logprobs, gradient_rms
from elman.tasks.evaluation import Scores, evaluate
from elman.tasks.loading import load


def segment_scores(model, batch, state):
    logits, state = model(batch.inputs, state)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, batch.targets.clamp(min=0).unsqueeze(-1))[:, 0, 0], state


def sgd_by_hand(model, stream, lr, decay=0.0):
    """The reference: score a segment through the full distribution, then one
    torch.optim.SGD step on its mean cross entropy, on a copy of ``model``, plus the pull
    λ (θ_0 − θ_{i−1}) toward the trained weights."""
    twin = copy.deepcopy(model)
    twin.eval()
    sgd = torch.optim.SGD(twin.parameters(), lr=lr)
    start = [p.detach().clone() for p in twin.parameters()]
    state, want = None, []
    for batch in stream:
        sgd.zero_grad()
        picked, state = segment_scores(twin, batch, state)
        want.append(picked.detach())
        (-picked.mean()).backward()
        with torch.no_grad():
            pulls = [decay * (p0 - p) for p, p0 in zip(twin.parameters(), start, strict=True)]
        sgd.step()
        with torch.no_grad():
            for p, pull in zip(twin.parameters(), pulls, strict=True):
                p += pull
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    return torch.cat(want)[: stream.total_tokens].double().numpy()


@torch.no_grad()
def rms_step_by_hand(params, start, rms, lr, decay, eps):
    """The RMS rule's step on ``params`` in place, from their gradients: θ −= η g / (√MS_g + ε),
    plus the pull λ r (θ_0 − θ), r = min(√MS_g / mean √MS_g, 1/λ), θ_0 = ``start``."""
    mean = torch.cat([r.flatten() for r in rms]).mean()
    for p, p0, r in zip(params, start, rms, strict=True):
        pull = decay * (r / mean).clamp(max=1 / decay) * (p0 - p)
        p -= lr * p.grad / (r + eps)
        p += pull


def test_each_segment_is_scored_before_the_step_it_teaches(lm_run):
    loaded = load(lm_run, "cpu")
    model = loaded.model
    ids = torch.arange(1, 13) % (len(loaded.vocab) - 1) + 1
    stream = BPTTStream(ids, 1, 4, start_id=loaded.vocab.eos_index)
    before = copy.deepcopy(model.state_dict())
    got = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.5)
    for name, value in model.state_dict().items():  # the trained weights are back
        assert torch.equal(value, before[name]), name
    want = sgd_by_hand(model, stream, lr=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    pulled = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.5, decay=0.3)
    np.testing.assert_allclose(pulled, sgd_by_hand(model, stream, 0.5, 0.3), rtol=1e-5, atol=1e-6)
    assert not np.allclose(pulled[4:], got[4:])  # the pull changed the later scores
    static = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.0)
    np.testing.assert_array_equal(got[:4], static[:4])  # the first segment: nothing learnt yet
    assert not np.allclose(got[4:], static[4:])


def test_a_segments_kept_scores_hold_no_graph_and_no_larger_storage(lm_run):
    """Regression: the adapter returned the indexed scores themselves, which kept each
    segment's autograd graph alive until the pass ended; on PTB valid the process grew by
    about 150 MB/s until the OOM killer stopped it. What it returns now is a plain copy."""
    loaded = load(lm_run, "cpu")
    ids = torch.arange(1, 13) % (len(loaded.vocab) - 1) + 1
    stream = BPTTStream(ids, 1, 4, start_id=loaded.vocab.eos_index)
    adapter = Adapter(loaded.model, lr=0.5)
    try:
        state = None
        for batch in stream:
            kept, state = adapter.segment(batch, state)
            assert kept.grad_fn is None and not kept.requires_grad and kept._base is None
            assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()
    finally:
        adapter.restore()


def test_the_rms_rule_follows_its_definition(lm_run):
    """√MS_g from the training segments' gradients, then θ −= η g / (√MS_g + ε) and the pull
    λ r (θ_0 − θ), r = min(√MS_g / mean √MS_g, 1/λ): checked by hand on a twin."""
    loaded = load(lm_run, "cpu")
    model = loaded.model
    V = len(loaded.vocab)
    train = BPTTStream(torch.arange(3, 19) % (V - 1) + 1, 1, 4, start_id=loaded.vocab.eos_index)
    test = BPTTStream(torch.arange(1, 13) % (V - 1) + 1, 1, 4, start_id=loaded.vocab.eos_index)
    twin = copy.deepcopy(model).eval()
    params = list(twin.parameters())
    squares, state = [torch.zeros_like(p) for p in params], None
    for batch in train:
        twin.zero_grad()
        picked, state = segment_scores(twin, batch, state)
        (-picked.mean()).backward()
        squares = [s + p.grad**2 for s, p in zip(squares, params, strict=True)]
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    want_rms = [(s / len(train)).sqrt() for s in squares]
    rms = gradient_rms(model, train)
    for got_r, want_r in zip(rms, want_rms, strict=True):
        torch.testing.assert_close(got_r, want_r)
    lr, decay, eps = 0.01, 0.2, 1e-3
    got = dynamic_logprobs(model, test, test.total_tokens, lr, decay, rms=rms, eps=eps)
    start = [p.detach().clone() for p in params]
    state, want = None, []
    for batch in test:
        twin.zero_grad()
        picked, state = segment_scores(twin, batch, state)
        want.append(picked.detach())
        (-picked.mean()).backward()
        rms_step_by_hand(params, start, want_rms, lr, decay, eps)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    np.testing.assert_allclose(got, torch.cat(want).double().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[4:], dynamic_logprobs(model, test, test.total_tokens, 0.0)[4:])


def test_a_rate_of_zero_is_the_static_evaluation(lm_run):
    result = evaluate(lm_run, "test", device="cpu", batch_size=1, dynamic=0.0)
    assert result.dynamic is not None
    assert result.dynamic.static_ppl == pytest.approx(result.metrics["ppl"], rel=1e-5)
    assert result.dynamic.ppl == result.dynamic.static_ppl


def test_learning_on_a_repetitive_text_lowers_its_perplexity(lm_run, tmp_path, capsys):
    folder = tmp_path / "repeat"
    folder.mkdir()
    for split in ("train", "valid"):
        (folder / f"{split}.txt").write_text("the cat sat on a mat\n")
    (folder / "test.txt").write_text("the red house ran to a big dog\n" * 40)
    argv = ["eval", str(lm_run), "--data", str(folder), "--device", "cpu", "--json"]
    assert main([*argv, "--dynamic", "0.3", "--dynamic-decay", "0.01"]) == 0
    r = json.loads(capsys.readouterr().out)["dynamic"]
    assert r["lr"] == 0.3 and r["decay"] == 0.01 and math.isfinite(r["ppl"])
    assert r["ppl"] < 0.9 * r["static_ppl"]
    rms = ["--dynamic-rule", "rms", "--dynamic-segment", "5", "--dynamic-stats-tokens", "20"]
    assert main([*argv, "--dynamic", "0.01", "--dynamic-decay", "0.01", *rms]) == 0
    r = json.loads(capsys.readouterr().out)["dynamic"]
    assert (r["rule"], r["segment"]) == ("rms", 5)
    assert r["ppl"] < 0.9 * r["static_ppl"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dynamic", "-1"], "--dynamic"),
        (["--dynamic", "0.1", "--dynamic-decay", "1"], "--dynamic-decay"),
        (["--dynamic", "0.1", "--dynamic-segment", "0"], "--dynamic-segment"),
        (["--dynamic", "0.1", "--dynamic-rule", "adam"], "--dynamic-rule"),
    ],
)
def test_bad_dynamic_options_are_one_line(lm_run, capsys, extra, message):
    rc = main(["eval", str(lm_run), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err


def test_a_results_record_of_dynamic_evaluation(lm_run, tmp_path, capsys):
    out = tmp_path / "dyn.json"
    argv = ["eval", str(lm_run), "--device", "cpu", "--dynamic", "0.2", "--results", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["recipe"].endswith("+dynamic") and record["task"] == "eval --dynamic"
    for split in ("valid", "test"):
        m = record["metrics"][split]
        assert m["lr"] == 0.2 and m["ppl"] != m["static_ppl"] and m["tokens"] > 0
    assert f"ppl {record['metrics']['test']['ppl']:.2f}" in capsys.readouterr().out


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule 'adam' unknown"):
        DynamicSettings(0.1, rule="adam")


def test_a_diverging_rate_is_one_line_not_an_overflow(lm_run, capsys):
    """Regression: a rate that made the adapted weights diverge raised OverflowError from
    math.exp; it is now the one-line refusal of a non-finite perplexity."""
    argv = ["eval", str(lm_run), "--device", "cpu", "--dynamic", "1e30", "--dynamic-rule", "rms"]
    rc = main([*argv, "--dynamic-stats-tokens", "20"])
    err = capsys.readouterr().err
    assert rc != 0 and "not a finite number" in err and "Traceback" not in err


def test_a_mixture_with_dynamic_evaluation_mixes_the_adapted_model(lm_run, corpus, tmp_path):
    from elman.cli.ngram import build

    arpa = tmp_path / "kn3.arpa"
    build(str(corpus), order=3, smoothing="kn", out=arpa)
    plain = evaluate(lm_run, "test", device="cpu", mix=str(arpa), batch_size=1)  # as it reads
    still = evaluate(lm_run, "test", device="cpu", mix=str(arpa), dynamic=0.0)
    assert still.mix.neural_ppl == pytest.approx(plain.mix.neural_ppl, rel=1e-5)
    adapted = evaluate(lm_run, "test", device="cpu", mix=str(arpa), dynamic=0.3)
    assert adapted.mix.neural_ppl == pytest.approx(adapted.dynamic.ppl, rel=1e-9)
    assert adapted.mix.neural_ppl != pytest.approx(plain.mix.neural_ppl, rel=1e-3)
    assert adapted.mix.ppl <= min(adapted.mix.neural_ppl, adapted.mix.ngram_ppl) * 1.05


@pytest.fixture
def passes(monkeypatch) -> list[tuple[str, float]]:
    """(split, η) of every dynamic-evaluation pass of a language model, in order."""
    from elman.tasks.lm import LMTask

    seen: list[tuple[str, float]] = []
    adapt = LMTask.dynamic_logprobs

    def counted(self, loaded, dataset, split, settings):
        seen.append((split, settings.lr))
        return adapt(self, loaded, dataset, split, settings)

    monkeypatch.setattr(LMTask, "dynamic_logprobs", counted)
    return seen


def test_a_results_record_with_a_mixture_adapts_to_each_split_once(
    lm_run, corpus, tmp_path, passes
):
    """Regression: ``elman eval --mix --dynamic --results`` adapted the model over valid four
    times and over test twice (33.5 minutes for PTB's NPLM where a pass each takes about 8)."""
    from elman.cli.ngram import build

    arpa = tmp_path / "kn3.arpa"
    build(str(corpus), order=3, smoothing="kn", out=arpa)
    out = tmp_path / "record.json"
    argv = ["eval", str(lm_run), "--device", "cpu", "--mix", str(arpa), "--dynamic", "0.2"]
    assert main([*argv, "--results", str(out)]) == 0
    # each split once adapted (rate 0.2) and once read statically the same way (rate 0)
    assert sorted(passes) == [("test", 0.0), ("test", 0.2), ("valid", 0.0), ("valid", 0.2)]
    record = json.loads(out.read_text())
    alone = evaluate(lm_run, "test", device="cpu", mix=str(arpa), dynamic=0.2)
    assert record["metrics"]["test"]["ppl"] == pytest.approx(alone.mix.ppl, rel=1e-9)


def test_the_dynamic_evaluation_benchmark_reads_each_pass_once(
    lm_run, tmp_path, monkeypatch, passes
):
    """benchmarks/dynamic_eval.py: each rate adapts to valid once, the static scores are read
    once per split, and its results record reuses the chosen rate's passes."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks/dynamic_eval.py"
    spec = importlib.util.spec_from_file_location("dynamic_eval_benchmark", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out, results = tmp_path / "bench.json", tmp_path / "record.json"
    argv = [str(lm_run), "--lrs", "0.1", "0.3", "--out", str(out), "--results", str(results)]
    monkeypatch.setattr(sys, "argv", ["dynamic_eval.py", *argv])
    bench.main()
    valid = sorted(lr for split, lr in passes if split == "valid")
    test = sorted(lr for split, lr in passes if split == "test")
    chosen = json.loads(out.read_text())["test"]["lr"]
    assert valid == [0.0, 0.1, 0.3] and test == [0.0, chosen]
    record, bench = json.loads(results.read_text()), json.loads(out.read_text())
    assert record["metrics"]["test"]["ppl"] == bench["test"]["ppl"]
    searched = sum(t["seconds"] for t in bench["valid"]) + bench["test"]["seconds"]
    assert record["wall_time_s"] >= round(searched, 1)  # the search's time, not the record's


def test_the_benchmark_tries_rates_in_parallel_with_the_same_numbers(
    lm_run, tmp_path, monkeypatch, passes
):
    """``--jobs 2``: each rate adapts to valid in its own process with the numbers of one
    process, and the main process adapts only to test (the chosen rate's valid scores come back
    from its worker for the results record)."""
    import importlib
    import sys
    from pathlib import Path

    # importable by name, so that the spawned workers find the function they run
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    module = importlib.import_module("dynamic_eval")
    out, results = tmp_path / "bench.json", tmp_path / "record.json"
    argv = [str(lm_run), "--lrs", "0.1", "0.3", "--jobs", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["dynamic_eval.py", *argv, "--results", str(results)])
    module.main()
    record, bench = json.loads(results.read_text()), json.loads(out.read_text())
    chosen = min(bench["valid"], key=lambda t: t["ppl"])
    # the main process scores valid once as trained, and test
    assert passes == [("valid", 0.0), ("test", 0.0), ("test", chosen["lr"])]
    assert bench["test"]["lr"] == chosen["lr"]
    assert record["metrics"]["valid"]["ppl"] == pytest.approx(chosen["ppl"], rel=1e-9)
    assert record["metrics"]["test"]["ppl"] == bench["test"]["ppl"]
    assert [t["lr"] for t in bench["valid"]] == [0.1, 0.3]
    for t in bench["valid"]:
        alone = evaluate(lm_run, "valid", device="cpu", dynamic=t["lr"]).dynamic
        assert (t["ppl"], t["static_ppl"]) == pytest.approx((alone.ppl, alone.static_ppl), rel=1e-9)
    # a worker, run here, adapts to valid at its own rate only: the static scores are given
    loaded = load(lm_run, "cpu")
    static = Scores(loaded, loaded.dataset()).dynamic("valid", DynamicSettings(0.0))
    passes.clear()
    tried, adapted = module.rate_in_process(str(lm_run), DynamicSettings(0.3), static)
    assert passes == [("valid", 0.3)] and adapted is not None
    assert tried["ppl"] == pytest.approx(bench["valid"][1]["ppl"], rel=1e-9)
    assert math.exp(-float(np.mean(adapted))) == pytest.approx(tried["ppl"], rel=1e-9)


def test_the_rms_statistics_are_gathered_once_for_every_rate(lm_run, monkeypatch):
    """Regression: the RMS rule's gradient statistics (of the trained weights, which every pass
    restores) were gathered again for each rate and split: six minutes a time on ptb-awd-cpu."""
    from elman.inference import dynamic

    gathered = []
    real = dynamic.gradient_rms

    def counted(*args, **kwargs):
        gathered.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dynamic, "gradient_rms", counted)
    loaded = load(lm_run, "cpu")
    dataset = loaded.dataset()
    first = loaded.task.dynamic_logprobs(loaded, dataset, "valid", DynamicSettings(0.1, rule="rms"))
    for split, lr in (("valid", 0.3), ("test", 0.1)):
        loaded.task.dynamic_logprobs(loaded, dataset, split, DynamicSettings(lr, rule="rms"))
    assert len(gathered) == 1
    again = loaded.task.dynamic_logprobs(loaded, dataset, "valid", DynamicSettings(0.1, rule="rms"))
    np.testing.assert_array_equal(first, again)  # the kept statistics give the same scores
    loaded.task.dynamic_logprobs(
        loaded, dataset, "valid", DynamicSettings(0.1, rule="rms", stats_tokens=7)
    )
    assert len(gathered) == 2  # other statistics: gathered for them


@pytest.mark.parametrize("output", ["class", "adaptive"])
def test_a_factored_output_adapts_as_its_full_distribution_does(output):
    """Regression: segments were scored through the whole V-way distribution, whose one slice
    per class made each backward zero-fill a (T, V) gradient per class: 2.5 segments a second
    on WikiText-2's 183-class softmax, three quarters of it filling zeros. Only the targets'
    classes are scored now; the scores and the steps are those of the full distribution."""
    from elman.models.rnnlm import RNNLM, RNNLMConfig

    torch.manual_seed(0)
    V = 13
    options: dict = {"output_classes": 4}
    if output == "adaptive":
        options = {"adaptive_cutoffs": [4, 8], "adaptive_div_value": 2.0}
    counts = torch.arange(V, 0, -1) ** 2 if output == "class" else None
    config = RNNLMConfig(
        vocab_size=V, embedding_dim=8, hidden_size=8, cell="lstm", output=output, **options
    )
    model = RNNLM(config, counts)
    ids = torch.arange(1, 25) * 7 % V
    stream = BPTTStream(ids, 1, 5, start_id=0)
    got = dynamic_logprobs(model, stream, stream.total_tokens, lr=0.5)
    want = sgd_by_hand(model, stream, lr=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got[5:], dynamic_logprobs(model, stream, stream.total_tokens, 0.0)[5:])
