"""The training loop: determinism, logging, clipping statistics, early stopping, bad losses."""

from __future__ import annotations

import json

import pytest
import torch

from elman.errors import ElmanError
from elman.tasks import lm
from elman.tasks.loading import load
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint

from .test_resume import DROPOUT, assert_identical


def test_two_identical_runs_give_identical_weights(recipe, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    train(recipe, overrides=DROPOUT, out=a)
    train(recipe, overrides=DROPOUT, out=b)
    assert_identical(a, b)
    # and the seed matters: the comparison is not vacuous
    train(recipe, overrides=[*DROPOUT, "train.seed=2"], out=c)
    wa = load_checkpoint(a / "last.pt")["model"]["decoder.weight"]
    wc = load_checkpoint(c / "last.pt")["model"]["decoder.weight"]
    assert not torch.equal(wa, wc)


def test_metrics_log_records_loss_clipping_and_validation(recipe, tmp_path):
    run_dir = tmp_path / "run"
    summary = train(recipe, overrides=["train.clip_norm=0.01"], out=run_dir)
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["kind"] == "train"]
    valid_recs = [r for r in records if r["kind"] == "valid"]
    assert [r["epoch"] for r in valid_recs] == [1, 2]
    assert all(r["clip_fraction"] == 1.0 for r in train_recs)  # threshold far below ‖g‖
    assert all(r["grad_norm"] > 0.01 for r in train_recs)
    assert all(r["clip_fraction"] == 1.0 for r in valid_recs)
    for r in valid_recs:
        assert r["ppl"] == pytest.approx(torch.tensor(r["loss"]).exp().item(), rel=1e-6)
    assert summary["best_valid_loss"] == min(r["loss"] for r in valid_recs)
    assert (run_dir / "best.pt").is_file() and (run_dir / "recipe.json").is_file()


def test_clipping_never_fires_with_a_huge_threshold(recipe, tmp_path):
    run_dir = tmp_path / "run"
    train(recipe, overrides=["train.clip_norm=1e9", "train.epochs=1"], out=run_dir)
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["clip_fraction"] == 0.0 for r in records)


def test_early_stopping(recipe, tmp_path):
    # lr 0: the validation loss never improves after epoch 1, so patience 2 stops after epoch 3.
    run_dir = tmp_path / "run"
    s = train(
        recipe, overrides=["train.lr=0.0", "train.epochs=10", "train.patience=2"], out=run_dir
    )
    assert s["stopped_early"] and s["epochs"] == 3
    assert (run_dir / "results.json").is_file()


def test_newbob_ends_training_when_annealing_stops_helping(recipe, tmp_path):
    # lr 0: epoch 2 does not improve (annealing starts), epoch 3 does not either (done).
    run_dir = tmp_path / "run"
    s = train(
        recipe, overrides=["train.lr=0.0", "train.epochs=10", "train.schedule=newbob"], out=run_dir
    )
    assert s["stopped_early"] and s["epochs"] == 3


def test_averaged_weights_are_the_ones_validated_saved_and_evaluated(recipe, tmp_path):
    run_dir = tmp_path / "run"
    s = train(recipe, overrides=["train.epochs=3", "train.average_start=2"], out=run_dir)
    last = load_checkpoint(run_dir / "last.pt")
    average = last["trainer"]["average"]
    steps_per_epoch = s["history"][0]["step"]
    assert average["count"] == 2 * steps_per_epoch  # every step of epochs 2 and 3
    params = [k for k, v in last["model"].items() if v.is_floating_point()]
    assert len(average["raw"]) == len(params)
    assert not all(
        torch.equal(last["model"][k], r) for k, r in zip(params, average["raw"], strict=True)
    )
    # the logged validation loss of the last epoch is that of the saved (averaged) weights
    valid = lm.TASK.load(last, torch.device("cpu")).evaluate("valid")
    assert valid["loss"] == pytest.approx(s["history"][-1]["loss"], rel=1e-9)


def test_plateau_average_starts_after_the_first_epoch_without_a_gain(recipe, tmp_path):
    # lr 0: epoch 2 does not improve on epoch 1, so the steps of epoch 3 (only) are averaged.
    run_dir = tmp_path / "run"
    s = train(
        recipe,
        overrides=["train.lr=0.0", "train.epochs=3", "train.average_start=plateau"],
        out=run_dir,
    )
    last = load_checkpoint(run_dir / "last.pt")
    assert last["trainer"]["averaging"]
    assert last["trainer"]["average"]["count"] == s["history"][0]["step"]
    with pytest.raises(ElmanError, match="average_start"):
        train(recipe, overrides=["train.average_start=soon"], out=tmp_path / "bad")


FACTORED = {
    "adaptive": ["model.adaptive_cutoffs=[4, 8]", "model.adaptive_div_value=2.0"],
    "class": ["model.output_classes=4"],
}


@pytest.mark.parametrize("output", FACTORED)
def test_a_factored_output_lm_trains_evaluates_and_samples(recipe, tmp_path, output):
    run_dir = tmp_path / "run"
    overrides = [f"model.output={output}", *FACTORED[output], "train.lr=0.5"]
    s = train(recipe, overrides=overrides, out=run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["test"]["ppl"] < 14  # below the uniform model over 14 words
    assert results["metrics"]["valid"]["loss"] == pytest.approx(s["best_valid_loss"], rel=1e-9)
    text = load(run_dir, "cpu").generate("the cat", 5, seed=1)
    assert text.startswith("the cat") and len(text) > len("the cat")
    with pytest.raises(ElmanError, match=r"\[model\].*adaptive_cutoffs"):
        train(
            recipe,
            overrides=["model.output=adaptive", "model.adaptive_cutoffs=[4, 99]"],
            out=tmp_path / "bad",
        )


def test_non_finite_loss_is_a_clear_error(recipe, tmp_path, monkeypatch):
    from elman.models.rnnlm import RNNLM

    real_loss = RNNLM.loss

    def nan_loss(self, batch, state=None):
        loss_sum, n, state = real_loss(self, batch, state)
        return loss_sum * float("nan"), n, state

    monkeypatch.setattr(RNNLM, "loss", nan_loss)
    with pytest.raises(ElmanError, match="non-finite loss at step 1 .*clip_norm"):
        train(recipe, out=tmp_path / "r")


@pytest.mark.slow  # torch.compile takes about a minute on a 2-core machine
def test_a_compiled_training_step_trains_what_the_eager_one_trains(recipe, tmp_path):
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train(recipe, overrides=["train.max_steps=4"], out=eager)
    train(recipe, overrides=["train.max_steps=4", "train.compile=true"], out=compiled)
    a = load_checkpoint(eager / "last.pt")["model"]
    b = load_checkpoint(compiled / "last.pt")["model"]
    assert a.keys() == b.keys()  # compiling the step leaves the checkpoint's names alone
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)


def test_a_device_this_machine_lacks_is_one_line():
    from elman.train.trainer import pick_device

    if not torch.cuda.is_available():
        with pytest.raises(ElmanError, match="train.device cuda:1: CUDA is not available here"):
            pick_device("cuda:1", "train.device")
    mps = getattr(torch.backends, "mps", None)
    if not (mps and mps.is_available()):
        with pytest.raises(ElmanError, match="--device mps: MPS is not available here"):
            pick_device("mps", "--device")
    assert pick_device("cpu").type == "cpu"


def test_keep_epochs_keeps_the_last_k_epoch_checkpoints(recipe, tmp_path):
    run_dir = tmp_path / "run"
    s = train(recipe, overrides=["train.epochs=4", "train.keep_epochs=2"], out=run_dir)
    assert sorted(p.name for p in run_dir.glob("epoch*.pt")) == ["epoch3.pt", "epoch4.pt"]
    last = load_checkpoint(run_dir / "last.pt")
    kept = load_checkpoint(run_dir / "epoch4.pt")
    assert all(torch.equal(last["model"][k], kept["model"][k]) for k in last["model"])
    epoch3 = load_checkpoint(run_dir / "epoch3.pt")
    assert epoch3["trainer"]["global_step"] == s["history"][2]["step"]


def test_finetuning_restarts_from_best_with_a_fresh_average(recipe, tmp_path):
    """AWD-LSTM's stage: best.pt's weights, averaging from the stage's first step, best.pt
    replaced only by a better averaged model, and the curve against CPU time in the results."""
    run_dir = tmp_path / "run"
    overrides = ["train.epochs=2", "train.finetune_epochs=2", "train.average_start=plateau"]
    s = train(recipe, overrides=overrides, out=run_dir)
    history = s["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert [bool(r.get("finetuning")) for r in history] == [False, False, True, True]
    last = load_checkpoint(run_dir / "last.pt")
    steps_per_epoch = history[0]["step"]
    assert last["trainer"]["finetune_from"] == 3
    assert last["trainer"]["average"]["count"] == 2 * steps_per_epoch  # the stage's steps only
    assert all(r["lr"] == history[0]["lr"] for r in history[2:])  # constant rate lr
    best = load_checkpoint(run_dir / "best.pt")
    assert best["trainer"]["best_valid"] == min(r["loss"] for r in history)
    results = json.loads((run_dir / "results.json").read_text())
    curve = results["curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3, 4]
    assert all(a["cpu_time_s"] <= b["cpu_time_s"] for a, b in zip(curve, curve[1:], strict=False))
    assert [p.get("finetuning", False) for p in curve] == [False, False, True, True]
    assert curve[0]["ppl"] == pytest.approx(history[0]["ppl"], rel=1e-3)


def test_finetuning_starts_from_best_pt_after_an_early_stop(recipe, tmp_path):
    # lr 0: nothing changes the weights, so the stage starts from best.pt = epoch 1's weights
    run_dir = tmp_path / "run"
    overrides = ["train.lr=0.0", "train.epochs=10", "train.patience=1", "train.finetune_epochs=1"]
    s = train(recipe, overrides=overrides, out=run_dir)
    assert [bool(r.get("finetuning")) for r in s["history"]] == [False, False, True]
    assert s["history"][2]["loss"] == pytest.approx(s["history"][0]["loss"], rel=1e-9)
    with pytest.raises(ElmanError, match="finetune_epochs"):
        train(recipe, overrides=["train.finetune_epochs=-1"], out=tmp_path / "bad")


def test_a_run_resumed_inside_the_finetuning_stage_is_exact(recipe, tmp_path):
    overrides = ["train.epochs=1", "train.finetune_epochs=2", *DROPOUT]
    straight = tmp_path / "straight"
    summary = train(recipe, overrides=overrides, out=straight)
    per_epoch = summary["history"][0]["step"]
    split = tmp_path / "split"
    stop = per_epoch + per_epoch // 2  # inside the stage's first epoch
    first = train(recipe, overrides=[*overrides, f"train.max_steps={stop}"], out=split)
    assert first["interrupted"]
    train(None, resume=split)
    assert_identical(straight, split)
