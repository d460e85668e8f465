"""The NPLM task end to end: recipe → `elman train` → `elman eval`, the convention, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from elman.cli import main
from elman.config import read_toml
from elman.data.datasets import resolve
from elman.errors import ElmanError
from elman.tasks import nplm
from elman.tasks.table import TASKS, parse_recipe
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint
from train.lmtoy import num_tokens

RECIPE = """\
[recipe]
name = "tiny-nplm"
task = "nplm"
aim = "a test"

[data]
dataset = "{corpus}"
batch_size = 16
eval_batch_size = 7

[model]
context_size = 3
embedding_dim = 6
hidden_size = 8
dropout_hidden = 0.1

[train]
epochs = 2
optimizer = "adam"
lr = 0.01
device = "cpu"
threads = 1
progress = false
log_every = 5
"""


@pytest.fixture
def nplm_recipe(tmp_path: Path, corpus: Path) -> Path:
    path = tmp_path / "nplm.toml"
    path.write_text(RECIPE.format(corpus=corpus.as_posix()))
    return path


def test_task_is_in_the_table() -> None:
    assert TASKS["nplm"] is nplm.TASK


def test_train_and_eval_through_the_cli(
    nplm_recipe: Path, corpus: Path, tmp_path: Path, capsys
) -> None:
    run_dir, results = tmp_path / "run", tmp_path / "results" / "r.json"
    argv = ["train", str(nplm_recipe), "--out", str(run_dir), "--results", str(results)]
    assert main(argv) == 0
    record = json.loads(results.read_text())
    assert record["task"] == "nplm" and record["epochs"] == 2
    for split in ("valid", "test"):
        assert record["metrics"][split]["tokens"] == num_tokens(corpus / f"{split}.txt")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ppl"] == pytest.approx(record["metrics"]["test"]["ppl"], rel=1e-6)
    assert evaluated["tokens"] == num_tokens(corpus / "test.txt")


def test_evaluate_scores_every_token_once_from_eos_padded_windows(
    nplm_recipe: Path, corpus: Path
) -> None:
    """The task's perplexity equals a token-by-token computation over the documented windows."""
    recipe = parse_recipe(read_toml(nplm_recipe))
    torch.manual_seed(0)
    parts = nplm.TASK.prepare(recipe)
    model, vocab = parts.model.eval(), parts.vocab
    dataset = resolve(str(corpus))
    tokens = dataset.tokens("test")
    ids = vocab.encode(tokens).tolist()
    eos = vocab.eos_index
    total = 0.0
    with torch.no_grad():
        for t, target in enumerate(ids):
            context = [ids[t - k] if t - k >= 0 else eos for k in (3, 2, 1)]
            logp = torch.log_softmax(model(torch.tensor([context])), -1)
            total -= logp[0, target].item()
    expected = total / len(ids)
    for batch_size in (1, 5, 1000):  # the batch size does not change the score
        got = nplm.evaluate_model(model, vocab, dataset, "test", batch_size, torch.device("cpu"))
        assert got["tokens"] == len(tokens)
        assert got["loss"] == pytest.approx(expected, rel=1e-5)


def test_resume_gives_the_same_weights(nplm_recipe: Path, tmp_path: Path) -> None:
    # Epochs of 100 random windows: the subset of each epoch must be re-drawn the same way.
    subset = ["data.epoch_size=100"]
    straight = train(nplm_recipe, out=tmp_path / "a", overrides=subset)
    stopped = train(nplm_recipe, out=tmp_path / "b", overrides=[*subset, "train.max_steps=9"])
    assert stopped["interrupted"]
    resumed = train(resume=tmp_path / "b", overrides=["train.max_steps=1000"])
    assert resumed["global_step"] == straight["global_step"]
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_bad_recipe_keys_are_one_line_errors(nplm_recipe: Path, tmp_path: Path, capsys) -> None:
    text = nplm_recipe.read_text().replace("hidden_size = 8", "hiden_size = 8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["train", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "hiden_size" in err and "hidden_size" in err and "Traceback" not in err
    with pytest.raises(ElmanError, match='train_dtype was renamed; write train.autocast = "fp8"'):
        train(nplm_recipe, out=tmp_path / "y", overrides=["model.train_dtype=fp8"])


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")  # a tiny corpus
def test_mix_with_an_ngram_model(nplm_recipe: Path, corpus: Path, tmp_path: Path) -> None:
    from elman.cli.ngram import build

    train(nplm_recipe, out=tmp_path / "run")
    arpa = tmp_path / "kn3.arpa"
    build(str(corpus), order=3, smoothing="kn", out=arpa)
    results = tmp_path / "mix.json"
    argv = [
        "eval",
        str(tmp_path / "run"),
        "--mix",
        str(arpa),
        "--results",
        str(results),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    record = json.loads(results.read_text())
    test = record["metrics"]["test"]
    assert test["tokens"] == num_tokens(corpus / "test.txt")
    assert 0.0 <= test["lambda"] <= 1.0 and test["tuned_on"] == "valid"
    # λ is tuned on valid, where the mixture is never worse than either model alone.
    valid = record["metrics"]["valid"]
    assert valid["ppl"] <= min(valid["neural_ppl"], valid["ngram_ppl"]) * (1 + 1e-9)
    loaded = nplm.TASK.load(load_checkpoint(tmp_path / "run"), torch.device("cpu"))
    evaluated = nplm.TASK.evaluate(loaded, resolve(str(corpus)), "test", batch_size=64)
    assert test["neural_ppl"] == pytest.approx(evaluated["ppl"], rel=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.output=adaptive", "model.adaptive_cutoffs=[4, 8]", "model.adaptive_div_value=2.0"],
        ["model.output=class", "model.output_classes=4"],
    ],
    ids=["adaptive", "class"],
)
def test_a_factored_output_nplm_trains_and_evaluates_the_same_way(
    nplm_recipe: Path, tmp_path: Path, capsys, overrides: list[str]
) -> None:
    run_dir = tmp_path / "run"
    summary = train(nplm_recipe, out=run_dir, overrides=overrides)
    record = json.loads((run_dir / "results.json").read_text())
    assert record["metrics"]["valid"]["loss"] == pytest.approx(summary["best_valid_loss"])
    assert record["metrics"]["test"]["ppl"] < 14  # below the uniform model over 14 words
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ppl"] == pytest.approx(record["metrics"]["test"]["ppl"], rel=1e-6)


def test_dynamic_evaluation_of_an_nplm(nplm_recipe: Path, corpus: Path, tmp_path: Path) -> None:
    """Windows in corpus order, segment by segment, each scored before one SGD step on it
    (checked by hand on a twin); rate 0 is the static score; the RMS rule runs too."""
    import copy

    from elman.inference.dynamic import DynamicSettings

    train(nplm_recipe, out=tmp_path / "run")
    loaded = nplm.TASK.load(load_checkpoint(tmp_path / "run"), torch.device("cpu"))
    dataset = resolve(str(corpus))
    static = nplm.TASK.token_logprobs(loaded, dataset, "test")
    rate0 = nplm.TASK.dynamic_logprobs(loaded, dataset, "test", DynamicSettings(0.0, segment=5))
    assert rate0.shape == static.shape
    assert rate0 == pytest.approx(static, rel=1e-6, abs=1e-6)
    twin = copy.deepcopy(loaded.model).eval()
    sgd = torch.optim.SGD(twin.parameters(), lr=0.1)
    windows = nplm.make_windows(loaded.vocab, dataset, "test", twin.context_size, 5)
    want = []
    for batch in windows.iter_from(0):
        sgd.zero_grad()
        logp = torch.log_softmax(twin(batch.contexts), -1)
        picked = logp.gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1)
        want.append(picked.detach())
        (-picked.mean()).backward()
        sgd.step()
    got = nplm.TASK.dynamic_logprobs(loaded, dataset, "test", DynamicSettings(0.1, segment=5))
    assert got == pytest.approx(torch.cat(want).double().numpy(), rel=1e-5, abs=1e-6)
    rms = DynamicSettings(0.01, 0.02, rule="rms", segment=5, stats_tokens=40)
    assert len(nplm.TASK.dynamic_logprobs(loaded, dataset, "test", rms)) == len(static)
    out = tmp_path / "dyn.json"
    argv = ["eval", str(tmp_path / "run"), "--dynamic", "0.1", "--results", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    test = json.loads(out.read_text())["metrics"]["test"]
    assert test["segment"] == 20 and test["static_ppl"] == pytest.approx(
        math.exp(-static.mean()), rel=1e-5
    )
