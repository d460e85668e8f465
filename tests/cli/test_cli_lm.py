"""``elman train / eval / generate`` end to end on a tiny corpus, and every bad input as one line.

Bad input must give exit code 2 and exactly one line on stderr, ``elman: error: …`` naming the
file or argument, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elman.cli import main
from train.lmtoy import num_tokens, write_corpus, write_recipe


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(capsys, argv: list[str], *names: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("elman: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in err, f"{name!r} not in {err!r}"
    return err


@pytest.fixture
def trained(recipe, tmp_path, capsys) -> Path:
    """A run folder trained by ``elman train`` (one epoch)."""
    out = tmp_path / "run"
    code, stdout, _ = run(
        capsys, "train", str(recipe), "--set", "train.epochs=1", "--out", str(out)
    )
    assert code == 0
    assert "valid | ppl" in stdout and "test  | ppl" in stdout
    return out


def test_train_writes_results(trained, corpus, tmp_path, capsys):
    results = json.loads((trained / "results.json").read_text())
    assert results["recipe"] == "tiny" and results["aim"] == "a test"
    for split in ("valid", "test"):
        m = results["metrics"][split]
        assert m["tokens"] == num_tokens(corpus / f"{split}.txt")
        assert m["ppl"] == pytest.approx(torch.tensor(m["loss"]).exp().item(), rel=1e-6)
    for key in ("wall_time_s", "cpu_time_s", "device", "commit", "date", "command", "epochs"):
        assert key in results
    assert results["command"].startswith("elman ")
    assert {p.name for p in trained.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl"}


def test_train_results_flag_and_resume_of_a_finished_run(trained, tmp_path, capsys):
    extra = tmp_path / "results" / "tiny.json"
    code, _, _ = run(capsys, "train", "--resume", str(trained), "--results", str(extra))
    assert code == 0
    assert json.loads(extra.read_text())["metrics"]["test"]["tokens"] > 0


def test_eval_prints_perplexity_and_json(trained, corpus, capsys):
    code, out, _ = run(capsys, "eval", str(trained), "--split", "valid", "--device", "cpu")
    assert code == 0 and "ppl" in out and f"{num_tokens(corpus / 'valid.txt')} tokens" in out
    code, out, _ = run(capsys, "eval", str(trained / "last.pt"), "--json", "--batch-size", "3")
    result = json.loads(out)
    assert code == 0 and result["split"] == "test"
    assert result["tokens"] == num_tokens(corpus / "test.txt")
    assert {"ppl", "loss", "seconds", "checkpoint", "data"} <= result.keys()


def test_eval_progress_goes_to_stderr_and_json_stays_alone_on_stdout(
    trained, corpus, capsys, monkeypatch
):
    argv = ["eval", str(trained), "--json", "--batch-size", "1"]
    code, quiet, err = run(capsys, *argv)
    assert code == 0 and err == ""  # done within the 30 s between two lines
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every batch
    code, out, err = run(capsys, *argv)
    drop = ("seconds",)  # the one number that differs between two runs
    assert {k: v for k, v in json.loads(out).items() if k not in drop} == {
        k: v for k, v in json.loads(quiet).items() if k not in drop
    }
    lines = err.splitlines()
    assert lines and all(line.startswith(f"evaluating {corpus}/test | ") for line in lines)
    assert " batches (100%) | " in lines[-1]


def test_eval_on_another_folder_of_the_same_kind(trained, tmp_path, capsys):
    other = write_corpus(tmp_path / "other")
    code, out, _ = run(capsys, "eval", str(trained), "--data", str(other), "--json")
    assert code == 0 and json.loads(out)["data"] == str(other)


def test_generate_prints_text(trained, capsys):
    argv = ["generate", str(trained), "--prompt", "the cat", "--tokens", "8", "--seed", "1"]
    code, out, err = run(capsys, *argv, "--top-k", "5", "--top-p", "0.9")
    assert code == 0 and out.startswith("the cat ") and err == ""
    assert run(capsys, *argv, "--top-k", "5", "--top-p", "0.9")[1] == out
    code, out, err = run(capsys, "generate", str(trained), "--prompt", "the zebra", "--seed", "1")
    assert code == 0 and out.startswith("the zebra")
    assert err.startswith("elman: warning:") and "zebra" in err and "Traceback" not in err


# --------------------------------------------------------------------------- bad input
def test_missing_and_malformed_recipes(tmp_path, corpus, capsys):
    missing = tmp_path / "nope.toml"
    assert_one_error(capsys, ["train", str(missing)], missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1\n")
    assert_one_error(capsys, ["train", str(bad)], bad, "not valid TOML")
    typo = write_recipe(tmp_path / "typo.toml", corpus, "")
    typo.write_text(typo.read_text().replace("lr = 1.0", "lrate = 1.0"))
    assert_one_error(capsys, ["train", str(typo)], "lrate", "valid keys", "lr")
    assert_one_error(capsys, ["train"], "give a recipe")


@pytest.mark.parametrize(
    "override, names",
    [
        ("train.lrr=1", ["lrr", "valid keys"]),
        ("data.dataset=no-such-corpus", ["no-such-corpus", "ptb"]),
        ("recipe.task=translate", ["translate", "lm"]),
        ("train.schedule=cosine", ["cosine", "plateau"]),
        ("train.lr=-1", ["lr must be >= 0"]),
        ("train.optimizer=rmsprop", ["rmsprop", "adam"]),
        ("model.embedding_dim=-1", ["embedding_dim"]),
        ("model.cell=transformer", ["transformer", "lstm"]),
        ("model.cell_options.nonlinearity=sigmoid", ["nonlinearity", "forget_bias"]),
        ("model.cell_options.color=red", ["color", "forget_bias"]),
        ("data.max_size=1", ["max_size"]),
        ("train.device=cuda:7", ["cuda:7"]),
        ("train.lr", ["--set", "SECTION.KEY=VALUE"]),
    ],
)
def test_bad_overrides_are_one_line(recipe, tmp_path, capsys, override, names):
    if override.endswith("cuda:7") and torch.cuda.is_available():
        pytest.skip("CUDA is here")
    argv = ["train", str(recipe), "--set", override, "--out", str(tmp_path / "r")]
    assert_one_error(capsys, argv, *names)


@pytest.mark.parametrize(
    "split, content, names",
    [
        ("train", None, ["train.txt"]),
        ("valid", None, ["valid.txt"]),
        ("train", b"", ["train.txt", "empty"]),
        ("valid", b"", ["valid.txt", "empty"]),
        ("test", b"", ["test.txt", "empty"]),
        ("train", b"the cat\nsat on \xff mat\n", ["train.txt", "line 2", "UTF-8"]),
        ("test", b"caf\xe9\n", ["test.txt", "line 1", "UTF-8"]),
    ],
)
def test_bad_corpus_files_fail_before_training(
    recipe, corpus, tmp_path, capsys, split, content, names
):
    path = corpus / f"{split}.txt"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    out = tmp_path / "r"
    assert_one_error(capsys, ["train", str(recipe), "--out", str(out)], *names)
    assert not (out / "last.pt").exists()  # found before any training time was spent


def test_bad_checkpoints(tmp_path, trained, capsys):
    missing = tmp_path / "missing.pt"
    truncated = tmp_path / "truncated.pt"
    data = (trained / "best.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all\n" * 50)
    foreign = tmp_path / "foreign.pt"
    torch.save({"w": torch.zeros(2)}, foreign)
    empty_dir = tmp_path / "empty-run"
    empty_dir.mkdir()
    for path in (missing, truncated, garbage, foreign, empty_dir):
        assert_one_error(capsys, ["eval", str(path)], path)
        assert_one_error(capsys, ["generate", str(path), "--tokens", "3"], path)


def test_bad_eval_and_generate_arguments(trained, capsys):
    assert_one_error(capsys, ["eval", str(trained), "--split", "dev"], "dev", "valid")
    assert_one_error(capsys, ["eval", str(trained), "--batch-size", "-1"], "batch-size")
    assert_one_error(capsys, ["eval", str(trained), "--data", "nope-corpus"], "nope-corpus")
    assert_one_error(capsys, ["generate", str(trained), "--tokens", "-1"], "--tokens")
    assert_one_error(capsys, ["generate", str(trained), "--temperature", "-1"], "--temperature")
    assert_one_error(capsys, ["generate", str(trained), "--top-p", "1.5"], "--top-p")
    assert_one_error(capsys, ["generate", str(trained), "--top-k", "0"], "--top-k")


def test_outputs_are_checked_before_the_evaluation(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    # The checkpoint does not exist: the --results path is refused before anything is loaded.
    bad = tmp_path / "a-file" / "r.json"
    err = assert_one_error(capsys, ["eval", str(tmp_path / "none.pt"), "--results", str(bad)])
    assert "--results" in err and "a-file is a file, not a folder" in err
    err = assert_one_error(capsys, ["train", str(tmp_path / "none.toml"), "--results", str(bad)])
    assert "--results" in err and "a-file is a file, not a folder" in err


def test_eval_with_results_scores_each_split_once(trained, tmp_path, capsys, monkeypatch):
    import elman.tasks.evaluation as evaluation

    calls = []
    real = evaluation.Evaluation.__init__

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("split"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(evaluation.Evaluation, "__init__", counted)
    out = tmp_path / "results" / "r.json"
    code, stdout, _ = run(capsys, "eval", str(trained), "--results", str(out), "--json")
    assert code == 0 and sorted(calls) == ["test", "valid"]
    record = json.loads(out.read_text())
    assert json.loads(stdout)["ppl"] == record["metrics"]["test"]["ppl"]
    assert record["recipe"] == trained.name  # a run folder (its best.pt) goes by its name
    code, _, _ = run(capsys, "eval", str(trained / "last.pt"), "--results", str(out))
    assert code == 0 and json.loads(out.read_text())["recipe"] == f"{trained.name}-last"


def test_eval_refuses_metrics_that_are_not_finite(trained, tmp_path, capsys, monkeypatch):
    import elman.tasks.evaluation as evaluation
    import elman.tasks.results as results_module
    from elman.tasks.loading import load

    loaded = load(trained, "cpu")
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.fill_(float("nan"))  # what the checkpoint check would refuse at load time
    monkeypatch.setattr(evaluation, "load", lambda *a, **k: loaded)
    monkeypatch.setattr(results_module, "load", lambda *a, **k: loaded)
    results = tmp_path / "r.json"
    err = assert_one_error(capsys, ["eval", str(trained), "--results", str(results)])
    assert "is nan, not a finite number" in err and not results.exists()
    assert_one_error(capsys, ["eval", str(trained), "--json"], "is nan, not a finite number")


def test_eval_runs_on_one_thread_unless_told(trained, capsys):
    torch.set_num_threads(2)
    assert run(capsys, "eval", str(trained), "--device", "cpu")[0] == 0
    assert torch.get_num_threads() == 1  # the default (elman.cli.options.DEFAULT_THREADS)
    assert run(capsys, "eval", str(trained), "--threads", "2")[0] == 0
    assert torch.get_num_threads() == 2


def test_resume_errors_and_an_occupied_run_folder(recipe, trained, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_error(capsys, ["train", "--resume", str(empty)], empty / "last.pt")
    nowhere = tmp_path / "nowhere"
    assert_one_error(capsys, ["train", "--resume", str(nowhere)], nowhere)
    err = assert_one_error(capsys, ["train", str(recipe), "--out", str(trained)], trained)
    assert "--resume" in err
    argv = ["train", "--resume", str(trained), "--set", "data.batch_size=2"]
    assert_one_error(capsys, argv, "data.batch_size", "[train]")
