"""A training run is safe: one process per run folder, no non-finite weights saved, overrides on
resume applied or refused, SIGTERM and Ctrl-C saving the step under way, strict ranges.

The signal and lock tests run ``elman train`` in a child process that pauses after a given step
(a wrapper around ``Trainer._step``), so that the signal or the second run arrives at a known
moment; the child stops pausing as soon as a signal has been recorded.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import warnings

import pytest
import torch

from elman.cli.demo import check_run_folder
from elman.errors import ElmanError
from elman.files import read_jsonl
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint
from elman.train.optim import LRSchedule
from elman.train.trainer import Trainer, TrainingStopped, all_finite

from .test_resume import DROPOUT, assert_identical, batches_per_epoch, elman_subprocess
from .test_trainer_state import toy_trainer

# Runs `elman ARGS` after patching the trainer to pause after step PAUSE_AT until a signal
# arrives (at most a minute): python -c CHILD PAUSE_AT ARGS…
# A suite started as a background job (`make test &`) passes SIGINT ignored to its children, and
# elman leaves an ignored SIGINT ignored; the child takes Python's own handler back, as at a
# terminal, so that the test sends its Ctrl-C to a process that can receive it.
CHILD = """\
import signal, sys, time
from elman.train.trainer import Trainer

signal.signal(signal.SIGINT, signal.default_int_handler)

pause_at = int(sys.argv[1])
real_step = Trainer._step

def step(self, batch, state):
    out = real_step(self, batch, state)
    if self.global_step == pause_at:
        print(f"paused after step {pause_at}", flush=True)
        deadline = time.monotonic() + 60
        while self._signal is None and time.monotonic() < deadline:
            time.sleep(0.02)
    return out

Trainer._step = step
from elman.cli import main
sys.exit(main(sys.argv[2:]))
"""


def paused_child(pause_at: int, *args: str) -> subprocess.Popen:
    """``elman ARGS`` in a child process, returned once it has paused after step ``pause_at``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(pause_at), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(f"paused after step {pause_at}"):
            return proc
    proc.wait()
    raise AssertionError(f"the child never paused: {proc.stderr.read() if proc.stderr else ''}")


# ----------------------------------------------------------------- the run-folder lock
def test_a_second_run_on_a_held_folder_stops_at_once_until_kill_9_frees_it(recipe, tmp_path):
    run = tmp_path / "run"
    holder = paused_child(3, "train", str(recipe), "--out", str(run), "--set", "train.save_every=2")
    try:
        second = elman_subprocess("train", str(recipe), "--out", str(run))
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and str(run) in second.stderr
        assert "in use by another elman train" in second.stderr
        with pytest.raises(ElmanError, match="in use by another elman train"):
            train(None, resume=run)  # this process is a third one
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()
    assert load_checkpoint(run / "last.pt")["trainer"]["global_step"] == 2
    leftover = run / ".last.pt.abc123.tmp"  # what a save killed midway leaves
    leftover.write_bytes(b"half a checkpoint")
    s = train(None, resume=run)
    assert not s["interrupted"] and (run / "results.json").is_file()
    assert not leftover.exists()


def test_the_lock_is_released_when_a_run_fails(recipe, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ElmanError, match="absent"):  # fails under the lock, in prepare
        train(recipe, overrides=[f"data.dataset={tmp_path / 'absent'}"], out=run)
    assert not run.exists()  # the folder it made for nothing is gone
    assert train(recipe, overrides=["train.max_steps=1"], out=run)["global_step"] == 1
    with pytest.raises(ElmanError, match="absent"):
        train(None, overrides=[f"data.dataset={tmp_path / 'absent'}"], resume=run)
    assert (run / "last.pt").is_file()  # a folder it did not make stays
    assert train(None, overrides=["train.max_steps=2"], resume=run)["global_step"] == 2
    assert (run / ".lock").is_file()
    check_run_folder(run)  # elman demo still takes the folder for an elman run


# ----------------------------------------------------------------- signals
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_step_under_way_and_the_resume_is_exact(recipe, tmp_path, sig, code):
    straight = tmp_path / "straight"
    train(recipe, overrides=DROPOUT, out=straight)
    per_epoch = batches_per_epoch(straight)
    stop = per_epoch + per_epoch // 2  # mid-epoch 2, between log windows and saves
    split = tmp_path / "split"
    sets = [a for o in DROPOUT for a in ("--set", o)]
    child = paused_child(stop, "train", str(recipe), "--out", str(split), *sets)
    child.send_signal(sig)
    out, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    name = signal.Signals(sig).name
    assert f"stopped at step {stop} ({name}); continue with `elman train --resume {split}`" in out
    last = load_checkpoint(split / "last.pt")
    assert last["trainer"]["global_step"] == stop and last["carry"] is not None
    train(None, resume=split)
    assert_identical(straight, split)


def test_a_signal_in_process_raises_training_stopped_after_saving(tmp_path):
    trainer = toy_trainer(tmp_path, epochs=3)
    real_step = Trainer._step

    def step_then_signal(self, batch, state):
        out = real_step(self, batch, state)
        if self.global_step == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only records it
        return out

    trainer._step = step_then_signal.__get__(trainer)  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingStopped) as stopped:
        trainer.fit()
    assert stopped.value.step == 5 and stopped.value.exit_code == 143
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["global_step"] == 5
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


# Under torchrun: rank 1 alone is signalled, after step 2; the ranks agree at the next log window.
SIGNALLED_RANK = """\
import os, signal, sys
from elman.train.trainer import Trainer

real_step = Trainer._step

def step(self, batch, state):
    out = real_step(self, batch, state)
    if os.environ["RANK"] == "1" and self.global_step == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return out

Trainer._step = step
from elman.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.distributed
def test_under_torchrun_the_ranks_stop_together_at_the_next_log_window(recipe, tmp_path):
    from .test_distributed import free_port

    worker = tmp_path / "worker.py"
    worker.write_text(SIGNALLED_RANK)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(worker)]
    cmd += ["train", str(recipe), "--out", str(run), "--set", "train.log_every=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0  # torchrun reports its workers' exit status 143
    message = f"stopped at step 3 (SIGTERM); continue with `elman train --resume {run}`"
    assert done.stdout.count(message) == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert load_checkpoint(run / "last.pt")["trainer"]["global_step"] == 3
    assert train(None, overrides=["train.max_steps=4"], resume=run)["global_step"] == 4


# ----------------------------------------------------------------- non-finite weights
def test_an_infinite_rate_stops_before_any_save(tmp_path):
    # a recipe cannot say lr = inf (test_values_out_of_range_…); Python code can set the rate
    trainer = toy_trainer(tmp_path, max_steps=1)
    trainer.schedule.lr = math.inf
    with pytest.raises(ElmanError, match=r"non-finite weights after step 1 .*nothing was saved"):
        trainer.fit()
    assert not (tmp_path / "last.pt").exists()


def poison_gradient_at(monkeypatch, step: int) -> None:
    """Put a NaN into one gradient entry of step ``step`` (from 1), after clipping."""
    real_clip = Trainer._clip_gradients

    def clip_then_poison(self):
        result = real_clip(self)
        if self.global_step == step - 1:  # the counter moves after the optimiser step
            self.params[0].grad[0, 0] = float("nan")
        return result

    monkeypatch.setattr(Trainer, "_clip_gradients", clip_then_poison)


def test_a_finite_checkpoint_is_never_overwritten_by_a_non_finite_one(
    recipe, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=2"], out=run)
    before = (run / "last.pt").read_bytes()
    poison_gradient_at(monkeypatch, 3)
    with pytest.raises(ElmanError, match=r"after step 3 \(epoch 1\).*keeps step 2"):
        train(None, overrides=["train.max_steps=3"], resume=run)
    assert (run / "last.pt").read_bytes() == before


def test_a_nan_gradient_stops_the_run_at_its_step(recipe, tmp_path, monkeypatch):
    poison_gradient_at(monkeypatch, 3)
    run = tmp_path / "run"
    overrides = ["train.save_every=2", "train.log_every=100"]
    with pytest.raises(ElmanError, match=r"non-finite weights after step 3 .*keeps step 2"):
        train(recipe, overrides=overrides, out=run)
    last = load_checkpoint(run / "last.pt")
    assert last["trainer"]["global_step"] == 2
    assert all(torch.isfinite(w).all() for w in last["model"].values() if w.is_floating_point())


def test_a_window_check_names_the_steps_it_covers(tmp_path):
    trainer = toy_trainer(tmp_path)
    trainer.state.global_step, trainer._finite_at = 7, 4
    with torch.no_grad():
        trainer.params[0][0, 0] = float("inf")
    with pytest.raises(ElmanError, match="after one of steps 5-7 .*nothing was saved"):
        trainer.save("last.pt")
    assert not (tmp_path / "last.pt").exists()


def test_all_finite_is_not_fooled_by_an_overflowing_norm():
    assert all_finite([torch.tensor([1e20, -1e20]), torch.ones(3)])  # ‖w‖² overflows float32
    assert not all_finite([torch.ones(3), torch.tensor([1.0, float("nan")])])
    assert not all_finite([torch.tensor([float("-inf")])])
    assert all_finite([])


# ----------------------------------------------------------------- divergence, metrics, progress
def test_an_exploding_validation_perplexity_is_a_warning_naming_the_epoch(tmp_path):
    trainer = toy_trainer(tmp_path, epochs=1)
    trainer.evaluate = lambda m: {"loss": 124.5}  # perplexity 1.17e54, finite
    with pytest.warns(UserWarning, match=r"epoch 1: validation perplexity 1.17e\+54 \(loss 124"):
        trainer.fit()
    losses = iter([1.0, 2.5])
    jumping = toy_trainer(tmp_path / "jump", epochs=2)
    jumping.evaluate = lambda m: {"loss": next(losses)}
    with pytest.warns(UserWarning, match=r"epoch 2: validation loss 2.5 is 1.5 above the best"):
        jumping.fit()
    steady = toy_trainer(tmp_path / "steady", epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steady.fit()


def test_metrics_are_strict_json_lines(tmp_path):
    trainer = toy_trainer(tmp_path, epochs=1)
    trainer.evaluate = lambda m: {"loss": 1.0, "bleu": float("nan")}
    trainer.fit()
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text
    records = [json.loads(line, parse_constant=pytest.fail) for line in text.splitlines()]
    assert records[-1]["bleu"] is None
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "ep')  # a crash mid-append
    assert read_jsonl(tmp_path / "metrics.jsonl") == records


@pytest.mark.parametrize("bar", [True, False])
def test_without_a_bar_training_prints_progress_lines(tmp_path, monkeypatch, capsys, bar):
    monkeypatch.setenv("ELMAN_PROGRESS_EVERY", "0")  # a line at every step
    trainer = toy_trainer(tmp_path, epochs=1, log_every=2)
    trainer.config.progress = bar  # stderr is no terminal under pytest: lines either way
    trainer.fit()
    out, err = capsys.readouterr()
    assert "| step" not in out  # stdout keeps the epoch lines and results
    lines = [x for x in err.splitlines() if x.startswith("epoch 1 | step")]
    assert lines[0] == "epoch 1 | step 1/4 (25%)"
    assert lines[2].startswith("epoch 1 | step 3/4 (75%) | loss ") and "tok/s" in lines[2]


# ----------------------------------------------------------------- resume rules
def test_a_recipe_or_out_beside_resume_is_refused(recipe, tmp_path):
    run = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=1"], out=run)
    with pytest.raises(ElmanError, match="give no recipe or --out beside it"):
        train(recipe, resume=run)
    with pytest.raises(ElmanError, match="give no recipe or --out beside it"):
        train(None, resume=run, out=tmp_path / "other")


def test_resuming_a_folder_without_a_checkpoint_says_so(recipe, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(ElmanError, match=f"run folder {run} has no checkpoint yet"):
        train(None, resume=run)
    with pytest.raises(ElmanError, match="no such run folder or checkpoint"):
        train(None, resume=tmp_path / "absent")


@pytest.mark.parametrize(
    "override",
    ["train.optimizer=adam", "train.schedule=fixed", "train.seed=2", "train.lr_decay=0.5"],
)
def test_a_resume_refuses_train_keys_it_could_not_honour(recipe, tmp_path, override):
    run = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=2"], out=run)
    key, value = override.split("=")
    with pytest.raises(ElmanError, match=rf"--set changes {key} \(.* -> '?{value}'?\); a resume"):
        train(None, overrides=[override], resume=run)


def test_the_keys_a_resume_may_change_take_effect(recipe, tmp_path):
    run = tmp_path / "run"
    train(recipe, overrides=["train.max_steps=3"], out=run)
    changes = ["train.lr=0.1", "train.momentum=0.9", "train.weight_decay=0.01"]
    changes += ["train.max_steps=6", "train.log_every=1", "train.clip_norm=0.25"]
    s = train(None, overrides=changes, resume=run)
    assert s["global_step"] == 6
    records = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    resumed = [r for r in records if r["step"] > 3]
    assert [r["step"] for r in resumed] == [4, 5, 6]  # log_every = 1
    assert all(r["lr"] == 0.1 for r in resumed)  # the rate restarted at the new lr
    last = load_checkpoint(run / "last.pt")
    group = last["optimizer"]["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 0.01)
    assert all("momentum_buffer" in s for s in last["optimizer"]["state"].values())
    assert last["recipe"]["train"]["lr"] == 0.1
    assert json.loads((run / "recipe.json").read_text())["train"]["clip_norm"] == 0.25
    # a later resume that changes nothing keeps the restarted rate
    s = train(None, overrides=["train.max_steps=7"], resume=run)
    assert load_checkpoint(run / "last.pt")["optimizer"]["param_groups"][0]["lr"] == 0.1


def test_a_new_lr_restarts_the_schedule_from_it():
    fixed = LRSchedule("fixed", 1.0, decay=0.5, decay_start=1)
    for epoch in (1, 2):
        fixed.step(epoch, 1.0)
    assert fixed.lr == 0.25  # the rate of epoch 3
    fixed.restart(0.1, epoch=3)
    assert fixed.lr == 0.1 and fixed.step(3, 1.0) == pytest.approx(0.05)
    plateau = LRSchedule("plateau", 1.0, decay=0.5, decay_start=1)
    plateau.restart(0.1, epoch=4)
    assert plateau.step(4, 1.0) == 0.1 and plateau.step(5, 2.0) == 0.05


def test_another_optimisers_state_is_one_line_in_python_too(tmp_path):
    adam = toy_trainer(tmp_path / "adam", optimizer="adam")
    adam.fit()
    sgd = toy_trainer(tmp_path / "sgd")
    payload = load_checkpoint(tmp_path / "adam" / "last.pt")
    with pytest.raises(ElmanError, match="optimiser state does not fit train.optimizer = 'sgd'"):
        sgd.load_state_dict(payload)


# ----------------------------------------------------------------- values out of range
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.log_every=0", r"\[train\]: log_every must be at least 1, got 0"),
        ("train.seed=18446744073709551616", r"seed must be in 0 … 4294967295"),
        ("train.seed=-1", r"seed must be in 0 … 4294967295"),
        ("train.threads=0", r"threads must be at least 1 \(or unset\), got 0"),
        ("train.max_steps=-1", r"max_steps must be at least 1 \(or unset\), got -1"),
        ("train.save_every=0", r"save_every must be at least 1"),
        ("train.patience=0", r"patience must be at least 1"),
        ("train.lr_decay=4", r"lr_decay must be in \(0, 1\] \(1: never decay\), got 4.0"),
        ("train.lr=nan", r"\[train\] lr = nan: expected a finite number"),
        ("train.lr=inf", r"\[train\] lr = inf: expected a finite number"),
        (
            "train.lr=1e300",
            r"\[train\]: lr must be >= 0 and at most 3.4e\+38 \(float32\), got 1e\+300",
        ),
        ("train.momentum=-inf", r"\[train\] momentum = -inf: expected a finite number"),
        ("train.clip_value=nan", r"\[train\] clip_value = nan: expected a finite number"),
        ("train.clip_norm=inf", r"\[train\] clip_norm = inf: expected a finite number"),
        ("train.min_lr=nan", r"\[train\] min_lr = nan: expected a finite number"),
        ("model.dropout_output=nan", r"\[model\] dropout_output = nan: expected a finite number"),
    ],
)
def test_values_out_of_range_are_one_line_naming_the_key(recipe, tmp_path, override, message):
    with pytest.raises(ElmanError, match=message):
        train(recipe, overrides=[override], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
