"""The one training loop every neural model of elman uses.

A model plugs in by implementing::

    loss_sum, num_tokens, state = model.loss(batch, state)

``loss_sum`` is the summed cross entropy over the batch's real targets, ``num_tokens`` their count,
``state`` whatever the model carries to the next batch (the BPTT hidden state; ``None`` for
stateless models). The loop minimises the per-token mean J = loss_sum / num_tokens, detaches the
carried state, clips, steps, logs, evaluates once per epoch, schedules the learning rate, keeps
``best.pt`` and ``last.pt`` and can stop after any step and continue exactly (``resume``).

Training data is any object with ``len(data)`` (batches per epoch) and ``data.iter_from(i)``
(the batches of the epoch from index ``i`` on); an optional ``data.set_epoch(epoch)`` lets it
reshuffle deterministically.

Under ``torchrun`` (elman.train.distributed) the same loop runs in every process: the training
step goes through a DistributedDataParallel wrapper, rank 0 alone logs, prints and saves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from elman.errors import ElmanError
from elman.train import distributed
from elman.train.checkpoint import save_checkpoint
from elman.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    LRSchedule,
    ParameterAverage,
    build_optimizer,
    clip_grad_norm,
    clip_grad_value,
    set_lr,
)

AUTOCAST = {None: None, "bfloat16": torch.bfloat16}


@dataclass
class TrainConfig:
    epochs: int = 10
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 1.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau | newbob | fixed | constant (elman.train.optim.LRSchedule)
    lr_decay: float = 0.25
    decay_start: int = 1  # fixed schedule: epochs at the full rate
    min_lr: float = 0.0
    min_improvement: float = 0.0  # plateau/newbob: relative validation-loss gain that counts
    # evaluate/save the mean of the weights over the steps from this epoch on, or from the epoch
    # after the first one without a min_improvement gain ("plateau": NT-ASGD's trigger)
    average_start: int | str | None = None
    clip_norm: float | None = None  # global-norm threshold (the lecture's rule)
    clip_value: float | None = None  # element-wise clipping
    patience: int | None = None  # early stopping: epochs without a better validation loss
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int | None = None  # torch.set_num_threads on CPU
    compile: bool = False  # torch.compile the training step's model.loss (not evaluation)
    # "bfloat16": training steps run under torch.autocast (weights, optimiser and loss stay
    # float32); evaluation always computes in float32
    autocast: str | None = None
    log_every: int = 100
    save_every: int | None = None  # steps between mid-epoch checkpoints
    max_steps: int | None = None  # stop (resumably) after this many steps in all
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast {self.autocast!r} unknown; valid: bfloat16 (or none)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {self.optimizer!r} unknown; valid: {', '.join(OPTIMIZERS)}"
            )
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith(
            "cuda:"
        ):
            raise ValueError(f"device {self.device!r} unknown; valid: auto, cpu, cuda, cuda:N, mps")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} unknown; valid: {', '.join(SCHEDULES)}")
        # torch's optimisers would raise these mid-setup, as a traceback
        for name in ("lr", "momentum", "weight_decay", "min_lr", "min_improvement"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        start = self.average_start
        if isinstance(start, str) and start != "plateau" or isinstance(start, int) and start < 1:
            raise ValueError(f"average_start must be an epoch >= 1 or 'plateau', got {start!r}")
        for name in ("lr_decay", "clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")


def pick_device(name: str) -> torch.device:
    """``auto`` takes CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ElmanError(f"device {name!r} asked for, but CUDA is not available; use device=cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor field of a dataclass batch (or a tensor, tuple, dict) to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch):
        changes = {
            f.name: to_device(getattr(batch, f.name), device)
            for f in dataclasses.fields(batch)
            if isinstance(getattr(batch, f.name), Tensor | tuple | list | dict)
        }
        return dataclasses.replace(batch, **changes)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def detach_state(state: Any) -> Any:
    """Cut the graph between BPTT chunks (truncated backpropagation through time)."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def _flatten_state(state: Any) -> list[Tensor] | None:
    if state is None:
        return None
    return [state] if isinstance(state, Tensor) else list(state)


def _unflatten_state(flat: list[Tensor] | None, device: torch.device) -> Any:
    if flat is None:
        return None
    flat = [t.to(device) for t in flat]
    return flat[0] if len(flat) == 1 else tuple(flat)


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
    """Mean cross entropy over every target of ``data`` (each scored once), and the token count."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.int64, device=device)
    state = None
    if hasattr(data, "to"):
        data = data.to(device)
    for batch in data.iter_from(0):
        loss_sum, n, state = model.loss(to_device(batch, device), state)
        total += loss_sum.double()
        count += n
    model.train(was_training)
    tokens = int(count.item())
    if tokens == 0:
        raise ElmanError("the evaluation data holds no tokens to score")
    return {"loss": total.item() / tokens, "tokens": tokens}


class Trainer:
    """Trains ``model`` on ``train_data``, validating with ``evaluate(model) -> {"loss": …, …}``.

    ``meta`` is written into every checkpoint beside the weights (task, recipe, vocabulary), so
    that the run folder alone rebuilds the model.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_data: Any,
        evaluate: Callable[[nn.Module], dict[str, float]],
        run_dir: str | Path,
        meta: dict[str, Any],
    ) -> None:
        self.config = config
        self.device = pick_device(config.device)
        if config.threads and self.device.type == "cpu":
            torch.set_num_threads(config.threads)
        self.model = model.to(self.device)
        # Several processes: the step runs model.loss through DDP (which averages gradients);
        # evaluation and checkpoints keep using the plain model.
        self.step_model: nn.Module | None = (
            distributed.wrap(self.model) if distributed.active() else None
        )
        # the training step's loss: through DDP under several processes, compiled on request
        # (torch.compile of the bound method leaves the state_dict keys as they are)
        loss_fn = self.step_model if self.step_model is not None else self.model.loss
        self.loss_fn = torch.compile(loss_fn) if config.compile else loss_fn
        self.main = distributed.is_main()
        # Move the whole stream once when it can, so batches cost nothing to fetch.
        self.train_data = train_data.to(self.device) if hasattr(train_data, "to") else train_data
        self.evaluate = evaluate
        self.run_dir = Path(run_dir)
        self.meta = meta
        self.optimizer = build_optimizer(
            config.optimizer,
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.schedule = LRSchedule(
            config.schedule,
            config.lr,
            decay=config.lr_decay,
            decay_start=config.decay_start,
            min_lr=config.min_lr,
            min_improvement=config.min_improvement,
        )
        # Position and bookkeeping; all of it goes into the checkpoint.
        self.epoch = 1
        self.step_in_epoch = 0
        self.global_step = 0
        self.best_valid = math.inf
        self.bad_epochs = 0
        self.carry: Any = None
        self.epoch_loss = 0.0
        self.epoch_tokens = 0
        self.clip_steps = 0
        self.history: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []  # command, commit, first step of each session
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.average: ParameterAverage | None = None  # train.average_start
        self.averaging = config.average_start == 1  # average after every step from now on
        self.finished = False
        self.wall_time = 0.0  # seconds of training over all sessions of this run
        # CPU seconds of this process (all its threads): on a shared machine the wall time
        # also counts the other jobs; with one thread this is the time of an idle core.
        self.cpu_time = 0.0
        self._fit_start: float | None = None
        self._cpu_start = 0.0
        self._writer = None

    def elapsed(self) -> float:
        if self._fit_start is None:
            return self.wall_time
        return self.wall_time + time.perf_counter() - self._fit_start

    def elapsed_cpu(self) -> float:
        if self._fit_start is None:
            return self.cpu_time
        return self.cpu_time + time.process_time() - self._cpu_start

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self, carry: Any) -> dict[str, Any]:
        """Everything a resume needs; ``carry`` is the carried state in the one-process layout."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        model_state = self.model.state_dict()
        average = None
        if self.average is not None:
            # "model" holds the weights that evaluate (the mean), so every reader of a
            # checkpoint uses them; the optimiser's own iterate travels for the resume.
            average = {
                "count": self.average.count,
                "raw": [p.detach().clone() for p in self.params],
            }
            with self.averaged():
                model_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {
            **self.meta,
            "model": model_state,
            "optimizer": self.optimizer.state_dict(),
            "trainer": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "best_valid": self.best_valid,
                "bad_epochs": self.bad_epochs,
                "epoch_loss": self.epoch_loss,
                "epoch_tokens": self.epoch_tokens,
                "clip_steps": self.clip_steps,
                "schedule": self.schedule.state_dict(),
                "history": self.history,
                "sessions": self.sessions,
                "finished": self.finished,
                "wall_time": self.elapsed(),
                "cpu_time": self.elapsed_cpu(),
                "average": average,
                "averaging": self.averaging,
            },
            "rng": rng,
            "carry": _flatten_state(carry),
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Restore everything ``state_dict`` wrote, so training continues bit for bit."""
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError as err:
            raise ElmanError(
                f"checkpoint {payload.get('path', '?')} does not match the model built from its "
                f"recipe ({str(err).splitlines()[0][:160]})"
            ) from None
        self.optimizer.load_state_dict(payload["optimizer"])
        t = payload["trainer"]
        if t.get("average") is not None:
            self.average = ParameterAverage(self.params)  # the mean: the loaded "model"
            self.average.count = int(t["average"]["count"])
            with torch.no_grad():
                for p, raw in zip(self.params, t["average"]["raw"], strict=True):
                    p.copy_(raw)
        self.epoch, self.step_in_epoch = int(t["epoch"]), int(t["step_in_epoch"])
        self.global_step = int(t["global_step"])
        self.best_valid, self.bad_epochs = float(t["best_valid"]), int(t["bad_epochs"])
        self.epoch_loss, self.epoch_tokens = float(t["epoch_loss"]), int(t["epoch_tokens"])
        self.clip_steps = int(t["clip_steps"])
        self.schedule.load_state_dict(t["schedule"])
        self.history = list(t["history"])
        self.sessions = list(t.get("sessions", []))
        self.finished = bool(t["finished"])
        self.wall_time = float(t.get("wall_time", 0.0))
        self.cpu_time = float(t.get("cpu_time", 0.0))
        self.averaging = bool(t.get("averaging", self.averaging))
        set_lr(self.optimizer, self.schedule.lr)
        torch.set_rng_state(payload["rng"]["torch"])
        if "cuda" in payload["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        # stored in the one-process column layout; each rank takes its own columns
        self.carry = distributed.shard_state(_unflatten_state(payload["carry"], self.device))

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block (a no-op without averaging)."""
        if self.average is None:
            yield
            return
        self.average.swap()
        try:
            yield
        finally:
            self.average.swap()

    def save(self, name: str) -> Path:
        """Write a checkpoint (rank 0 only; every rank must call it: the carry is gathered)."""
        carry = distributed.gather_state(detach_state(self.carry))
        if not self.main:
            return self.run_dir / name
        return save_checkpoint(self.state_dict(carry), self.run_dir / name)

    # ----------------------------------------------------------------- logging
    def _log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("epoch", "step"):
                    self._writer.add_scalar(f"{record['kind']}/{key}", value, self.global_step)

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train until the last epoch, early stopping, or ``max_steps``; return the summary."""
        cfg = self.config
        self._fit_start, self._cpu_start = time.perf_counter(), time.process_time()
        if self.global_step == 0 and self.step_in_epoch == 0 and self.epoch == 1:
            torch.manual_seed(cfg.seed)
        if cfg.tensorboard and self.main:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency

            self._writer = SummaryWriter(self.run_dir / "tensorboard")
        params = self.params
        set_lr(self.optimizer, self.schedule.lr)
        stopped_early = False
        while self.epoch <= cfg.epochs and not self.finished:
            # Checked before a step, not only after one: a target reached at an epoch end (or
            # before a resume) must not be overshot by the next epoch's first step.
            if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                self.save("last.pt")
                return self._summary(interrupted=True)
            if self._run_epoch(params):
                return self._summary(interrupted=True)
            stopped_early = self._end_epoch()
            if stopped_early:
                break
        self.finished = stopped_early  # a later resume with more epochs continues otherwise
        self.save("last.pt")
        return self._summary(interrupted=False, stopped_early=stopped_early)

    def _run_epoch(self, params: list[nn.Parameter]) -> bool:
        """One epoch from the saved position; True when ``max_steps`` interrupted it."""
        cfg = self.config
        model, device = self.model, self.device
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(self.epoch)
        (self.step_model or model).train()  # DDP.train() reaches the model inside
        n_batches = len(self.train_data)
        bar = None
        if cfg.progress and self.main:
            from tqdm.auto import tqdm  # progress bars belong to the training layer

            bar = tqdm(
                total=n_batches,
                initial=self.step_in_epoch,
                desc=f"epoch {self.epoch}",
                leave=False,
                dynamic_ncols=True,
            )
        state = self.carry
        win_loss = torch.zeros((), dtype=torch.float64, device=device)
        win_tokens = torch.zeros((), dtype=torch.int64, device=device)
        win_norm = torch.zeros((), device=device)
        win_fired = torch.zeros((), dtype=torch.int64, device=device)
        win_steps, win_start = 0, time.perf_counter()
        autocast = AUTOCAST[cfg.autocast]
        check_every_step = device.type == "cpu"  # a sync costs nothing there
        for batch in self.train_data.iter_from(self.step_in_epoch):
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss_sum, n_tokens, state = self.loss_fn(batch, state)
            if autocast is not None:  # a bfloat16 sum would round the per-token mean
                loss_sum = loss_sum.float()
            loss = loss_sum / distributed.loss_denominator(n_tokens)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state = detach_state(state)
            if cfg.clip_value is not None:
                clip_grad_value(params, cfg.clip_value)
            if cfg.clip_norm is not None:
                norm, fired = clip_grad_norm(params, cfg.clip_norm)
                win_norm += norm
                win_fired += fired
            self.optimizer.step()
            if self.averaging:
                if self.average is None:
                    self.average = ParameterAverage(self.params)
                else:
                    self.average.update()
            self.step_in_epoch += 1
            self.global_step += 1
            win_loss += loss_sum.detach().double()
            win_tokens += n_tokens
            win_steps += 1
            if check_every_step and not math.isfinite(loss.item()):
                self._non_finite()
            last = self.step_in_epoch == n_batches
            if self.global_step % cfg.log_every == 0 or last:
                self._log_window(
                    win_loss, win_tokens, win_norm, win_fired, win_steps, win_start, bar
                )
                win_loss.zero_(), win_tokens.zero_(), win_norm.zero_(), win_fired.zero_()
                win_steps, win_start = 0, time.perf_counter()
            if bar is not None:
                bar.update(1)
            if cfg.save_every and self.global_step % cfg.save_every == 0 and not last:
                if win_steps:  # into epoch_loss first, so a resume from here loses no tokens
                    self._log_window(
                        win_loss, win_tokens, win_norm, win_fired, win_steps, win_start, bar
                    )
                    win_loss.zero_(), win_tokens.zero_(), win_norm.zero_(), win_fired.zero_()
                    win_steps, win_start = 0, time.perf_counter()
                self.carry = state
                self.save("last.pt")
            if cfg.max_steps is not None and self.global_step >= cfg.max_steps and not last:
                if win_steps:
                    self._log_window(
                        win_loss, win_tokens, win_norm, win_fired, win_steps, win_start, bar
                    )
                self.carry = state
                self.save("last.pt")
                if bar is not None:
                    bar.close()
                return True
        if bar is not None:
            bar.close()
        self.carry = None
        return False

    def _non_finite(self) -> None:
        raise ElmanError(
            f"non-finite loss at step {self.global_step} (epoch {self.epoch}); lower the learning "
            "rate or set train.clip_norm (e.g. --set train.clip_norm=5)"
        )

    def _log_window(self, loss, tokens, norm, fired, steps, start, bar) -> None:
        distributed.all_reduce_sum(loss)  # every rank logs the global batch's loss
        distributed.all_reduce_sum(tokens)
        loss_sum, n = float(loss.item()), int(tokens.item())  # one sync per window
        if not math.isfinite(loss_sum):
            self._non_finite()
        self.epoch_loss += loss_sum
        self.epoch_tokens += n
        mean = loss_sum / max(n, 1)
        elapsed = max(time.perf_counter() - start, 1e-9)
        record = {
            "kind": "train",
            "epoch": self.epoch,
            "step": self.global_step,
            "loss": mean,
            "ppl": math.exp(min(mean, 700)),
            "lr": self.schedule.lr,
            "tokens_per_s": n / elapsed,
        }
        if self.config.clip_norm is not None:
            fired_n = int(fired.item())
            self.clip_steps += fired_n
            record["grad_norm"] = float(norm.item()) / max(steps, 1)
            record["clip_fraction"] = fired_n / max(steps, 1)
        self._log(record)
        if bar is not None:
            bar.set_postfix(
                loss=f"{mean:.3f}",
                ppl=f"{record['ppl']:.1f}",
                tok_s=f"{record['tokens_per_s']:.0f}",
            )

    def _end_epoch(self) -> bool:
        """Validate, schedule, checkpoint; True when early stopping ends training."""
        with self.averaged():
            # rank 0 validates; every rank's schedule and early stopping read its loss
            valid = self.evaluate(self.model) if self.main else {}
        if distributed.active():
            valid["loss"] = distributed.broadcast_float(valid.get("loss", math.nan))
        train_loss = self.epoch_loss / max(self.epoch_tokens, 1)
        record = {
            "kind": "valid",
            "epoch": self.epoch,
            "step": self.global_step,
            "lr": self.schedule.lr,
            "train_loss": train_loss,
            "train_ppl": math.exp(min(train_loss, 700)),
            "clip_fraction": self.clip_steps / max(len(self.train_data), 1),
            **valid,
        }
        self._log(record)
        self.history.append(record)
        if self.main:
            print(
                f"epoch {self.epoch:3d} | lr {self.schedule.lr:.4g} "
                f"| train ppl {record['train_ppl']:8.2f}"
                f" | valid " + " ".join(f"{k} {v:.4g}" for k, v in valid.items() if k != "tokens"),
                flush=True,
            )
        improved = valid["loss"] < self.best_valid
        if improved:
            self.best_valid = valid["loss"]
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        lr = self.schedule.step(self.epoch, valid["loss"])
        start = self.config.average_start
        if start == "plateau" and not self.schedule.last_improved or start == self.epoch + 1:
            self.averaging = True
        set_lr(self.optimizer, lr)
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_loss, self.epoch_tokens, self.clip_steps = 0.0, 0, 0
        stop = self.config.patience is not None and self.bad_epochs >= self.config.patience
        stop = stop or self.schedule.done
        if improved:
            self.save("best.pt")
        self.save("last.pt")
        return stop

    def _summary(self, interrupted: bool, stopped_early: bool = False) -> dict[str, Any]:
        return {
            "interrupted": interrupted,
            "stopped_early": stopped_early,
            "epochs": self.epoch - 1,
            "global_step": self.global_step,
            "best_valid_loss": self.best_valid,
            "wall_time": self.elapsed(),
            "cpu_time": self.elapsed_cpu(),
            "history": self.history,
        }
