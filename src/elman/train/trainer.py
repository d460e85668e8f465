"""The one training loop every neural model of elman uses.

A model plugs in by implementing::

    loss_sum, num_tokens, state = model.loss(batch, state)

``loss_sum`` is the summed cross entropy over the batch's real targets, ``num_tokens`` their count,
``state`` whatever the model carries to the next batch (the BPTT hidden state; ``None`` for
stateless models). A model may also define ``penalty()``: a regulariser of the step's forward
pass (AR/TAR, elman.nn.regularisers) that the gradient includes and the reported loss does not.
The loop minimises the per-token mean J = loss_sum / num_tokens (+ penalty), detaches the
carried state, clips, steps, logs, evaluates once per epoch, schedules the learning rate, keeps
``best.pt`` and ``last.pt`` and can stop after any step and continue exactly (``resume``).

Training data is any object with ``len(data)`` (batches per epoch) and ``data.iter_from(i)``
(the batches of the epoch from index ``i`` on); an optional ``data.set_epoch(epoch)`` lets it
reshuffle deterministically.

Under ``torchrun`` (elman.train.distributed) the same loop runs in every process: the training
step goes through a DistributedDataParallel wrapper, rank 0 alone logs, prints and saves.

What a run never does (docs/lm.md, "Resuming"):

* save non-finite weights: they are checked (one norm, one sync) before every save, at every log
  window, and on the CPU after every step; a step that made them NaN or infinite stops the run
  in one line naming it, and the last finite ``last.pt`` stays;
* lose the steps since the last checkpoint to SIGINT (Ctrl-C) or SIGTERM (schedulers, ``docker
  stop``): the loop finishes the step under way, saves ``last.pt`` and raises
  :class:`TrainingStopped`; a second signal acts at once. Under several processes the ranks
  agree on stopping at the next log window, so that they save the same step;
* go silent: without a progress bar it prints a line every 30 s (elman.train.progress), and an
  epoch whose validation loss explodes without becoming non-finite is a warning naming it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import Tensor, nn

from elman.errors import ElmanError
from elman.files import append_jsonl
from elman.train import distributed
from elman.train.checkpoint import load_checkpoint, load_weights, save_checkpoint
from elman.train.config import TrainConfig  # also imported from here, its first home
from elman.train.metrics import MetricWindow
from elman.train.optim import (
    LRSchedule,
    ParameterAverage,
    build_optimizer,
    clip_grad_norm,
    clip_grad_value,
    set_lr,
)
from elman.train.progress import EpochProgress, wants_bar

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

AUTOCAST = {None: None, "bfloat16": torch.bfloat16}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# An epoch's validation loss above this (perplexity 1e13: worse than a uniform guess over any
# vocabulary), or more than 1 nat (a factor e of perplexity) above the best so far, means the
# run diverges although its loss stayed finite.
DIVERGED_LOSS = 30.0
DIVERGED_JUMP = 1.0
# an optimiser's settings that the trainer sets after loading its state (the others must match);
# how the update runs (a fused kernel, foreach or a loop) is this build's, not the checkpoint's
RESETTABLE = ("params", "lr", "initial_lr", "momentum", "weight_decay", "fused", "foreach")

# model.loss, or the DDP wrapper that calls it: (batch, state) -> (loss_sum, num_tokens, state)
LossFn = Callable[[Any, Any], tuple[Tensor, int | Tensor, Any]]


class LossModel(Protocol):
    """The one method the trainer needs of a model (see the module docstring)."""

    def loss(self, batch: Any, state: Any) -> tuple[Tensor, int | Tensor, Any]: ...


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def autocast_dtype(name: str | None, device: torch.device) -> torch.dtype | None:
    """The dtype that ``train.autocast = name`` runs the training steps in on ``device``; None:
    float32.

    A CPU without oneDNN's bfloat16 kernels (no AVX-512: AVX2 and older) emulates bfloat16
    products at a tenth of float32's speed or worse, and torch's fused LSTM under autocast fails
    there; as ``torch.autocast`` does with a dtype a device lacks, it warns and trains in float32.
    """
    dtype = AUTOCAST[name]
    if dtype is torch.bfloat16 and device.type == "cpu" and not cpu_has_bfloat16():
        capability = torch.backends.cpu.get_cpu_capability()
        warnings.warn(
            f"train.autocast bfloat16: this CPU ({capability}) has no bfloat16 kernels; "
            "training in float32",
            stacklevel=2,
        )
        return None
    return dtype


def cpu_has_bfloat16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX-512 and newer)."""
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def pick_device(name: str, what: str = "device") -> torch.device:
    """``auto`` takes CUDA, then MPS, then the CPU; a device this machine lacks is one line
    (``what`` names the setting: ``train.device``, ``--device``), not a torch traceback once
    the model moves there."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name == "mps" and not _mps_available():
        raise ElmanError(f"{what} mps: MPS is not available here; use auto or cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ElmanError(f"{what} {name}: CUDA is not available here; use auto or cpu")
        count, index = torch.cuda.device_count(), int(name.partition(":")[2] or 0)
        if index >= count:
            raise ElmanError(
                f"{what} {name}: this machine has {count} CUDA device(s), cuda:0 … cuda:{count - 1}"
            )
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor field of a dataclass batch (or a tensor, tuple, dict) to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
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
        loss_sum, n, state = cast(LossModel, model).loss(to_device(batch, device), state)
        total += loss_sum.double()
        count += n
    model.train(was_training)
    tokens = int(count.item())
    if tokens == 0:
        raise ElmanError("the evaluation data holds no tokens to score")
    return {"loss": total.item() / tokens, "tokens": tokens}


@torch.no_grad()
def all_finite(tensors: list[Tensor]) -> bool:
    """Whether every entry of ``tensors`` is finite, with one norm and one host sync.

    The global L2 norm is finite exactly when no entry is NaN or infinite, unless the squares
    of huge but finite weights overflow; only then are the entries looked at one by one.
    """
    if not tensors:
        return True
    norms = [n.float() for n in torch._foreach_norm(tensors)]
    if math.isfinite(torch.linalg.vector_norm(torch.stack(norms)).item()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def divergence(loss: float, best: float) -> str | None:
    """Why an epoch's validation ``loss`` says that training diverges (None: it does not)."""
    if not math.isfinite(loss):
        return f"validation loss {loss} with finite weights"
    ppl = math.exp(min(loss, 700))
    if loss > DIVERGED_LOSS:
        return (
            f"validation perplexity {ppl:.3g} (loss {loss:.4g}), worse than a uniform guess over "
            "any vocabulary: training diverged"
        )
    if loss > best + DIVERGED_JUMP:
        return (
            f"validation loss {loss:.4g} is {loss - best:.3g} above the best so far "
            f"({best:.4g}; perplexity x{math.exp(loss - best):.3g}): training diverges"
        )
    return None


class TrainingStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training between two steps, after ``last.pt`` was saved.

    A ``KeyboardInterrupt``, so that a caller who does not know it treats it as Ctrl-C.
    ``exit_code`` is the shell's convention for the signal: 128 + its number (130, 143).
    """

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"{self.signal_name} stopped training after step {step}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class TrainerState:
    """Where training stands, and its bookkeeping: the checkpoint's ``trainer`` entry.

    Plain values only, so that a checkpoint loads with ``weights_only``. The learning-rate
    schedule and the weight average keep their own state, which ``Trainer.state_dict`` nests
    beside these fields as ``schedule`` and ``average``; the carried BPTT state is the
    checkpoint's ``carry``. A new field is one line here: saved, restored, and given its default
    when an older checkpoint lacks it.
    """

    epoch: int = 1  # the epoch under way, from 1
    step_in_epoch: int = 0  # steps taken in it: where its data resumes
    global_step: int = 0
    best_valid: float = math.inf
    bad_epochs: int = 0  # epochs since the best validation loss (train.patience)
    # this epoch's training loss and tokens, summed over the logged windows
    epoch_loss: float = 0.0
    epoch_tokens: int = 0
    clip_steps: int = 0  # this epoch's steps where clip_norm fired
    history: list[dict[str, Any]] = field(default_factory=list)  # one "valid" record per epoch
    sessions: list[dict[str, Any]] = field(default_factory=list)  # command, commit, first step
    finished: bool = False  # early stopping ended the run; more epochs do not revive it
    # seconds of training over all sessions of this run (in a checkpoint: up to its writing)
    wall_time: float = 0.0
    # CPU seconds of this process (all its threads): on a shared machine the wall time
    # also counts the other jobs; with one thread this is the time of an idle core.
    cpu_time: float = 0.0
    averaging: bool = False  # average the weights after every step from now on
    finetune_from: int = 0  # the epoch train.finetune_epochs' stage began at; 0: not begun

    def to_dict(self) -> dict[str, Any]:
        """The fields by name: the checkpoint's ``trainer`` entry (its lists, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], defaults: TrainerState | None = None) -> TrainerState:
        """Read what ``to_dict`` wrote; other keys are ignored, a missing one keeps ``defaults``'.

        Each value is cast to its field's type (as the default holds it), so the state keeps plain
        ints, floats, bools and its own lists whatever the reader handed over.
        """
        base = defaults if defaults is not None else cls()
        values = {}
        for f in fields(cls):
            default = getattr(base, f.name)
            values[f.name] = type(default)(d.get(f.name, default))
        return cls(**values)


class Trainer:
    """Trains ``model`` on ``train_data``, validating with ``evaluate(model) -> {"loss": …, …}``.

    ``meta`` is written into every checkpoint beside the weights (task, recipe, vocabulary), so
    that the run folder alone rebuilds the model. Everything a resume needs is ``state`` (position
    and bookkeeping), ``carry``, ``average``, the schedule, the optimiser and the RNG.
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
        self.device = pick_device(config.device, "train.device")
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
        loss_fn: LossFn = (
            self.step_model if self.step_model is not None else cast(LossModel, self.model).loss
        )
        self.loss_fn: LossFn = cast(LossFn, torch.compile(loss_fn)) if config.compile else loss_fn
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
        self.params: list[Tensor] = [p for p in self.model.parameters() if p.requires_grad]
        self.state = TrainerState(averaging=config.average_start == 1)
        self.carry: Any = None  # the state carried from the last step into the next
        self.average: ParameterAverage | None = None  # train.average_start
        self.window = MetricWindow(self.device, clipping=config.clip_norm is not None)
        self._autocast = autocast_dtype(config.autocast, self.device)
        self._fit_start: float | None = None
        self._cpu_start = 0.0
        self._writer: SummaryWriter | None = None
        self._signal: int | None = None  # SIGINT or SIGTERM received: stop after this step
        self._finite_at = 0  # the last step after which the weights were checked finite
        self._saved_step: int | None = None  # the step last.pt holds (None: not written yet)

    # Read by the commands and labs that drive a Trainer; the state holds the values.
    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def best_valid(self) -> float:
        return self.state.best_valid

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.state.sessions

    def elapsed(self) -> float:
        """Seconds of training over every session so far."""
        if self._fit_start is None:
            return self.state.wall_time
        return self.state.wall_time + time.perf_counter() - self._fit_start

    def elapsed_cpu(self) -> float:
        """CPU seconds of training over every session so far."""
        if self._fit_start is None:
            return self.state.cpu_time
        return self.state.cpu_time + time.process_time() - self._cpu_start

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self, carry: Any) -> dict[str, Any]:
        """Everything a resume needs; ``carry`` is the carried state in the one-process layout."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
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
        state = dataclasses.replace(
            self.state, wall_time=self.elapsed(), cpu_time=self.elapsed_cpu()
        )
        return {
            **self.meta,
            "model": model_state,
            "optimizer": self.optimizer.state_dict(),
            "trainer": {
                **state.to_dict(),
                "schedule": self.schedule.state_dict(),
                "average": average,
            },
            "rng": rng,
            "carry": _flatten_state(carry),
        }

    def load_state_dict(self, payload: dict[str, Any], previous: TrainConfig | None = None) -> None:
        """Restore everything ``state_dict`` wrote, so training continues bit for bit.

        ``previous``: the ``[train]`` config the checkpoint was written under. Where this
        trainer's config changes a key a resume may change (elman.train.config.RESUMABLE), the
        change takes effect: a new ``lr`` restarts the schedule's rate (its decays go on from
        there), ``momentum`` and ``weight_decay`` go into the restored optimiser; the other keys
        are read from the config as the run goes. Unchanged keys leave the state as saved.
        """
        load_weights(self.model, payload)
        self._load_optimizer(payload["optimizer"])
        t = payload["trainer"]
        if t.get("average") is not None:
            self._load_average(t["average"])
        # a key that an older checkpoint lacks keeps this (fresh) trainer's value
        self.state = TrainerState.from_dict(t, defaults=self.state)
        if self.state.finetune_from:
            self.schedule = self._finetune_schedule()
        self.schedule.load_state_dict(t["schedule"])
        if previous is not None and previous.lr != self.config.lr:
            self.schedule.restart(self.config.lr, self.state.epoch)
        set_lr(self.optimizer, self.schedule.lr)
        self._saved_step = self._finite_at = self.state.global_step
        torch.set_rng_state(payload["rng"]["torch"])
        if "cuda" in payload["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        # stored in the one-process column layout; each rank takes its own columns
        self.carry = distributed.shard_state(_unflatten_state(payload["carry"], self.device))

    def _load_optimizer(self, saved: dict[str, Any]) -> None:
        """The saved optimiser state, with this config's momentum and weight decay.

        torch loads another optimiser's state without a word (Adam's into SGD) and fails at the
        first step (``KeyError: 'betas'``), or steps silently as the other one (Adam's flags
        into AdamW): the settings other than the ones a resume may change must match.
        """
        fresh = [
            {k: v for k, v in g.items() if k not in RESETTABLE} for g in self.optimizer.param_groups
        ]
        built = [(g.get("fused"), g.get("foreach")) for g in self.optimizer.param_groups]
        mismatch = None
        try:
            self.optimizer.load_state_dict(saved)
        except (KeyError, ValueError) as err:
            mismatch = f"{type(err).__name__}: {err}"
        loaded = [
            {k: v for k, v in g.items() if k not in RESETTABLE} for g in self.optimizer.param_groups
        ]
        if mismatch is not None or loaded != fresh:
            raise ElmanError(
                f"the checkpoint's optimiser state does not fit train.optimizer = "
                f"{self.config.optimizer!r} ({mismatch or 'other settings'}); resume with the "
                "optimizer the run started with"
            ) from None
        for group, own in zip(self.optimizer.param_groups, built, strict=True):
            group["fused"], group["foreach"] = own  # a checkpoint written before fusing: fused now
            for p in group["params"] if group["fused"] else ():
                state = self.optimizer.state.get(p, {})
                if torch.is_tensor(state.get("step")):  # Adam's count, where the kernel reads it
                    state["step"] = state["step"].to(p.device, torch.float32)
            # the same values unless a resume changed them
            group["weight_decay"] = self.config.weight_decay
            if "momentum" in group:  # SGD's; Adam has betas instead
                group["momentum"] = self.config.momentum

    def _load_average(self, saved: dict[str, Any]) -> None:
        """The model holds the mean (the checkpoint's "model"); put the raw iterate back."""
        self.average = ParameterAverage(self.params)
        self.average.count = int(saved["count"])
        with torch.no_grad():
            for p, raw in zip(self.params, saved["raw"], strict=True):
                p.copy_(raw)

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
        """Write a checkpoint (rank 0 only; every rank must call it: the carry is gathered).

        Non-finite weights are never written: every rank holds the same weights, so every rank
        stops here with the same one-line error, and the last finite checkpoint stays.
        """
        self.check_weights(with_average=True)
        carry = distributed.gather_state(detach_state(self.carry))
        if not self.main:
            return self.run_dir / name
        path = save_checkpoint(self.state_dict(carry), self.run_dir / name)
        if name == "last.pt":
            self._saved_step = self.state.global_step
        return path

    def check_weights(self, with_average: bool = False) -> None:
        """Stop in one line when a step has made the weights NaN or infinite."""
        tensors = list(self.params)
        if with_average and self.average is not None:
            tensors += self.average.mean
        if all_finite(tensors):
            self._finite_at = self.state.global_step
            return
        st = self.state
        if self._finite_at >= st.global_step - 1:
            when = f"after step {st.global_step}"
        else:  # checked once per log window (on a GPU): the step is one of these
            when = f"after one of steps {self._finite_at + 1}-{st.global_step}"
        kept = (
            "nothing was saved"
            if self._saved_step is None
            else f"{self.run_dir / 'last.pt'} keeps step {self._saved_step}"
        )
        raise ElmanError(
            f"non-finite weights {when} (epoch {st.epoch}), not saved; {kept}; lower the "
            "learning rate or set train.clip_norm (e.g. --set train.clip_norm=5)"
        )

    # ----------------------------------------------------------------- logging
    def _log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # one strict-JSON line per write (NaN as null): a crash tears at most the last line,
        # which elman.files.read_jsonl skips
        append_jsonl(self.run_dir / "metrics.jsonl", record)
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("epoch", "step"):
                    self._writer.add_scalar(
                        f"{record['kind']}/{key}", value, self.state.global_step
                    )

    def _log_window(self, progress: EpochProgress) -> None:
        """Log the steps since the last log line and count them into the epoch's loss."""
        totals = self.window.flush()
        if not math.isfinite(totals.loss_sum):
            self._non_finite()
        self.state.epoch_loss += totals.loss_sum
        self.state.epoch_tokens += totals.tokens
        self.state.clip_steps += totals.clipped
        ppl = math.exp(min(totals.mean_loss, 700))
        record = {
            "kind": "train",
            "epoch": self.state.epoch,
            "step": self.state.global_step,
            "loss": totals.mean_loss,
            "ppl": ppl,
            "lr": self.schedule.lr,
            "tokens_per_s": totals.tokens_per_s,
        }
        if self.config.clip_norm is not None:
            record["grad_norm"] = totals.grad_norm
            record["clip_fraction"] = totals.clip_fraction
        self._log(record)
        progress.show(totals.mean_loss, ppl, totals.tokens_per_s)

    def _progress(self, total: int) -> EpochProgress:
        return EpochProgress(
            self.state.epoch,
            total,
            self.state.step_in_epoch,
            bar=wants_bar(self.config.progress),
            quiet=not self.main,
        )

    def _non_finite(self) -> None:
        raise ElmanError(
            f"non-finite loss at step {self.state.global_step} (epoch {self.state.epoch}); lower "
            "the learning rate or set train.clip_norm (e.g. --set train.clip_norm=5)"
        )

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train until the last epoch, early stopping, or ``max_steps``; return the summary.

        SIGINT or SIGTERM: ``last.pt`` of the step under way is saved, then
        :class:`TrainingStopped` is raised.
        """
        cfg = self.config
        self._fit_start, self._cpu_start = time.perf_counter(), time.process_time()
        self._finite_at = self.state.global_step
        if self.state.global_step == 0 and self.state.step_in_epoch == 0 and self.state.epoch == 1:
            torch.manual_seed(cfg.seed)
        if cfg.tensorboard and self.main:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency

            self._writer = SummaryWriter(self.run_dir / "tensorboard")
        set_lr(self.optimizer, self.schedule.lr)
        with self._signals_stop_after_a_step():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        stopped_early = False
        while not self.state.finished:
            if stopped_early or self.state.epoch > self._last_epoch():
                if not self._finetuning_due():
                    break
                self._begin_finetuning()  # a resume that added train.finetune_epochs
                stopped_early = False
            # Checked before a step, not only after one: a target reached at an epoch end (or
            # before a resume) must not be overshot by the next epoch's first step.
            if self._max_steps_reached() or self._stop_asked(sync=True):
                self.save("last.pt")
                return self._interrupted()
            if self._run_epoch():
                return self._interrupted()
            stopped_early = self._end_epoch()
            if (stopped_early or self.state.epoch > self._last_epoch()) and self._finetuning_due():
                # begun and saved at once, so that a resume from here continues the stage
                self._begin_finetuning()
                self.save("last.pt")
                stopped_early = False
        self.state.finished = stopped_early  # a later resume with more epochs continues otherwise
        self.save("last.pt")
        if self._stop_asked(sync=True):  # during the last validation: the results are not made
            return self._interrupted()
        return self._summary(interrupted=False, stopped_early=stopped_early)

    # ----------------------------------------------------------------- fine-tuning
    def _last_epoch(self) -> int:
        """The last epoch of the stage under way: training's, or the fine-tuning stage's."""
        start = self.state.finetune_from
        return start + self.config.finetune_epochs - 1 if start else self.config.epochs

    def _finetuning_due(self) -> bool:
        return self.config.finetune_epochs > 0 and not self.state.finetune_from

    def _finetune_schedule(self) -> LRSchedule:
        return LRSchedule("constant", self.config.lr, decay=1.0, decay_start=1)

    def _begin_finetuning(self) -> None:
        """AWD-LSTM's fine-tuning stage (its finetune.py): start again from best.pt's weights
        (the average, when averaging), with a fresh optimiser state, at the constant rate
        ``lr``, averaging from this stage's first step. best.pt is replaced only when the
        stage's averaged weights validate better; ``patience`` ends the stage early."""
        path = self.run_dir / "best.pt"
        distributed.barrier()  # rank 0 has written it
        if not path.is_file():
            raise ElmanError(f"train.finetune_epochs: {path} is missing; fine-tuning starts there")
        load_weights(self.model, load_checkpoint(path, map_location=self.device))
        self.optimizer.state.clear()
        self.average = None
        st = self.state
        st.averaging, st.finetune_from, st.bad_epochs = True, st.epoch, 0
        self.schedule = self._finetune_schedule()
        self.schedule.best = st.best_valid
        set_lr(self.optimizer, self.schedule.lr)
        if self.main:
            print(
                f"fine-tuning from best.pt (valid loss {st.best_valid:.4f}): up to "
                f"{self.config.finetune_epochs} epochs at lr {self.config.lr:.4g}, averaging "
                "from the first step",
                flush=True,
            )

    def _run_epoch(self) -> bool:
        """One epoch from the saved position; True when ``max_steps`` or a signal stopped it."""
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(self.state.epoch)
        (self.step_model or self.model).train()  # DDP.train() reaches the model inside
        n_batches = len(self.train_data)
        progress = self._progress(n_batches)
        self.window.reset()
        state = self.carry
        try:
            for batch in self.train_data.iter_from(self.state.step_in_epoch):
                state = self._step(to_device(batch, self.device), state)
                last = self.state.step_in_epoch == n_batches
                window_ends = self.state.global_step % self.config.log_every == 0 or last
                if window_ends:
                    self._log_window(progress)
                if window_ends or self.device.type == "cpu":  # a CPU sync costs nothing
                    self.check_weights()
                progress.step()
                if last:  # the epoch's end validates and saves
                    break
                stop = self._max_steps_reached() or self._stop_asked(sync=window_ends)
                if stop or self._periodic_save_due():
                    self._save_mid_epoch(state, progress)
                if stop:
                    return True
        finally:
            progress.close()
        self.carry = None
        return False

    # ----------------------------------------------------------------- stopping on signals
    @contextmanager
    def _signals_stop_after_a_step(self) -> Iterator[None]:
        """SIGINT and SIGTERM ask the loop to stop after the step under way, once.

        The handler only records the signal (a consistent state exists only between steps) and
        puts the previous handler back, so that a second signal acts at once as it would without
        elman. A signal the process ignores (SIGINT of a background job) stays ignored; outside
        the main thread Python cannot set handlers, and signals keep their usual effect.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def ask(signum: int, frame: Any) -> None:
            self._signal = signum
            signal.signal(signum, previous[signum])

        for sig in STOP_SIGNALS:
            handler = signal.getsignal(sig)
            if handler is not signal.SIG_IGN:
                previous[sig] = signal.SIG_DFL if handler is None else handler
                signal.signal(sig, ask)
        try:
            yield
        finally:
            for number, saved in previous.items():
                signal.signal(number, saved)

    def _stop_asked(self, sync: bool) -> bool:
        """Whether a signal asks to stop now.

        One process: at any step. Several: only where every rank passes (``sync``: a log window,
        an epoch's end), and all of them stop when any was signalled, so they save the same step.
        """
        if not distributed.active():
            return self._signal is not None
        if not sync:
            return False
        asked = torch.tensor(float(self._signal is not None), device=self.device)
        if distributed.all_reduce_sum(asked).item() == 0:
            return False
        self._signal = self._signal or int(signal.SIGTERM)
        return True

    def _interrupted(self) -> dict[str, Any]:
        """The summary of a run that ``max_steps`` stopped; a signal raises instead."""
        if self._signal is not None:
            raise TrainingStopped(self._signal, self.state.global_step)
        return self._summary(interrupted=True)

    def _step(self, batch: Any, state: Any) -> Any:
        """One optimiser step on ``batch`` from the carried ``state``; returns the next carry."""
        autocast = self._autocast
        with torch.autocast(self.device.type, dtype=autocast, enabled=autocast is not None):
            loss_sum, n_tokens, state = self.loss_fn(batch, state)
        if autocast is not None:  # a bfloat16 sum would round the per-token mean
            loss_sum = loss_sum.float()
        loss = loss_sum / distributed.loss_denominator(n_tokens)
        penalty = self._penalty()
        if penalty is not None:  # in the gradient, not in the reported loss (loss_sum)
            loss = loss + penalty
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state = detach_state(state)
        grad_norm, clipped = self._clip_gradients()
        self.optimizer.step()
        self._update_average()
        self.state.step_in_epoch += 1
        self.state.global_step += 1
        self.window.add(loss_sum, n_tokens, grad_norm, clipped)
        # on the CPU a sync costs nothing, so a bad loss stops the run at its own step
        if self.device.type == "cpu" and not math.isfinite(loss.item()):
            self._non_finite()
        return state

    def _penalty(self) -> Tensor | None:
        """The model's regulariser of the step just taken (``penalty()``), if it has one."""
        penalty = getattr(self.model, "penalty", None)
        return penalty() if callable(penalty) else None

    def _clip_gradients(self) -> tuple[Tensor | None, Tensor | None]:
        """Clip as configured; the pre-clip norm and whether clipping fired (None: no clip_norm)."""
        cfg = self.config
        if cfg.clip_value is not None:
            clip_grad_value(self.params, cfg.clip_value)
        if cfg.clip_norm is None:
            return None, None
        return clip_grad_norm(self.params, cfg.clip_norm)

    def _update_average(self) -> None:
        if not self.state.averaging:
            return
        if self.average is None:
            self.average = ParameterAverage(self.params)  # the mean starts at these weights
        else:
            self.average.update()

    def _max_steps_reached(self) -> bool:
        max_steps = self.config.max_steps
        return max_steps is not None and self.state.global_step >= max_steps

    def _periodic_save_due(self) -> bool:
        every = self.config.save_every
        if not every:
            return False
        return self.state.global_step % every == 0

    def _save_mid_epoch(self, state: Any, progress: EpochProgress) -> None:
        """Checkpoint inside the epoch with the carried state, to resume from this very step."""
        if self.window.steps:  # into epoch_loss first, so a resume from here loses no tokens
            self._log_window(progress)
        self.carry = state
        self.save("last.pt")

    def _end_epoch(self) -> bool:
        """Validate, schedule, checkpoint; True when early stopping ends training."""
        valid = self._validate()
        st = self.state
        train_loss = st.epoch_loss / max(st.epoch_tokens, 1)
        record = {
            "kind": "valid",
            "epoch": st.epoch,
            "step": st.global_step,
            "lr": self.schedule.lr,
            "train_loss": train_loss,
            "train_ppl": math.exp(min(train_loss, 700)),
            "clip_fraction": st.clip_steps / max(len(self.train_data), 1),
            "cpu_time": self.elapsed_cpu(),  # the learning curve against CPU time
            "wall_time": self.elapsed(),
            **valid,
        }
        if st.finetune_from:
            record["finetuning"] = True
        self._log(record)
        st.history.append(record)
        if self.main:
            print(
                f"epoch {st.epoch:3d} | lr {self.schedule.lr:.4g} "
                f"| train ppl {record['train_ppl']:8.2f}"
                f" | valid " + " ".join(f"{k} {v:.4g}" for k, v in valid.items() if k != "tokens"),
                flush=True,
            )
            why = divergence(valid["loss"], st.best_valid)
            if why is not None:
                warnings.warn(
                    f"epoch {st.epoch}: {why}; lower train.lr or set train.clip_norm "
                    "(e.g. --set train.clip_norm=5)",
                    stacklevel=2,
                )
        improved = valid["loss"] < st.best_valid
        if improved:
            st.best_valid = valid["loss"]
            st.bad_epochs = 0
        else:
            st.bad_epochs += 1
        lr = self.schedule.step(st.epoch, valid["loss"])
        start = self.config.average_start
        if start == "plateau" and not self.schedule.last_improved or start == st.epoch + 1:
            st.averaging = True
        set_lr(self.optimizer, lr)
        st.epoch += 1
        st.step_in_epoch = 0
        st.epoch_loss, st.epoch_tokens, st.clip_steps = 0.0, 0, 0
        stop = self.config.patience is not None and st.bad_epochs >= self.config.patience
        stop = stop or self.schedule.done
        if improved:
            self.save("best.pt")
        self.save("last.pt")
        self._keep_epoch(st.epoch - 1)
        return stop

    def _keep_epoch(self, epoch: int) -> None:
        """With ``keep_epochs = k``: last.pt, just written, is also ``epochN.pt``; older epochs
        beyond the last k are removed (fairseq's --keep-last-epochs)."""
        k = self.config.keep_epochs
        if not k or not self.main:
            return
        last = self.run_dir / "last.pt"
        kept = self.run_dir / f"epoch{epoch}.pt"
        kept.unlink(missing_ok=True)
        try:  # last.pt is only ever replaced (a new file), so a hard link keeps this content
            os.link(last, kept)
        except OSError:  # a file system without hard links
            shutil.copyfile(last, kept)
        for old in self.run_dir.glob("epoch*.pt"):
            number = old.stem.removeprefix("epoch")
            if number.isdigit() and int(number) <= epoch - k:
                old.unlink(missing_ok=True)

    def _validate(self) -> dict[str, float]:
        with self.averaged():
            # rank 0 validates; every rank's schedule and early stopping read its loss
            valid = self.evaluate(self.model) if self.main else {}
        if distributed.active():
            valid["loss"] = distributed.broadcast_float(valid.get("loss", math.nan))
        return valid

    def _summary(self, interrupted: bool, stopped_early: bool = False) -> dict[str, Any]:
        return {
            "interrupted": interrupted,
            "stopped_early": stopped_early,
            "epochs": self.state.epoch - 1,
            "global_step": self.state.global_step,
            "best_valid_loss": self.state.best_valid,
            "wall_time": self.elapsed(),
            "cpu_time": self.elapsed_cpu(),
            "history": self.state.history,
        }
