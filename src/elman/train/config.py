"""``[train]``: the typed config of the one trainer, its valid ranges, and what a resume may change.

Every number is checked when the recipe is read, so that a value that would crash mid-run
(``log_every = 0``), be silently meaningless (``lr_decay = 4`` "decays" upwards) or stop a run
after nothing (``max_steps = -1``) is one line naming the key and its valid range. Non-finite
values (``nan``, ``inf``) are refused for every float key of every recipe by
:func:`elman.config.build_dataclass`; the checks here also hold for a ``TrainConfig`` built in
Python (the labs build theirs).

A resume continues one run, so only keys that leave its state meaningful may change, and each of
them takes effect (:data:`RESUMABLE`; docs/lm.md, "Resuming").
"""

from __future__ import annotations

from dataclasses import dataclass

AUTOCAST_DTYPES = ("bfloat16",)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("plateau", "newbob", "fixed", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
# torch.manual_seed takes 64 bits, but the data readers seed their generators with
# seed * 100_003 + epoch, which must stay inside them too; 32 bits leave room for both.
MAX_SEED = 2**32 - 1
# The optimisers compute in float32: a larger rate is a traceback inside torch ("cannot be
# converted to type float without overflow") at the first step.
MAX_RATE = 3.4e38

# The [train] keys a resume may change (``elman train --resume RUN --set train.KEY=…``). Each one
# leaves the checkpoint's state meaningful and takes effect from the next step:
RESUMABLE = frozenset(
    {
        # how long: the loop reads them at every step and epoch end
        "epochs", "finetune_epochs", "max_steps", "patience",
        # what the run shows and writes
        "log_every", "save_every", "keep_epochs", "progress", "tensorboard",
        # where and how fast it computes (the arithmetic, not the state)
        "device", "threads", "compile", "autocast",
        # the step: lr restarts the schedule's current rate (Trainer.load_state_dict); momentum
        # and weight decay are written into the restored optimiser; clipping is read every step
        "lr", "momentum", "weight_decay", "clip_norm", "clip_value",
    }
)  # fmt: skip
# Refused: optimizer (its saved state has another layout), schedule, lr_decay, decay_start,
# min_lr, min_improvement (a run would mix two schedules), average_start (the average so far is
# part of the state) and seed (it acts at the start only, so a change would do nothing).


@dataclass
class TrainConfig:
    epochs: int = 10
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 1.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau | newbob | fixed | constant (elman.train.optim.LRSchedule)
    lr_decay: float = 0.25  # the factor of every decay, in (0, 1]
    decay_start: int = 1  # fixed schedule: epochs at the full rate
    min_lr: float = 0.0
    min_improvement: float = 0.0  # plateau/newbob: relative validation-loss gain that counts
    # evaluate/save the mean of the weights over the steps from this epoch on, or from the epoch
    # after the first one without a min_improvement gain ("plateau": NT-ASGD's trigger)
    average_start: int | str | None = None
    # AWD-LSTM's fine-tuning stage (Merity et al. 2018): after the last epoch or an early stop,
    # reload best.pt and train up to this many more epochs at the constant rate lr, averaging
    # the weights again from the stage's first step; 0: no such stage
    finetune_epochs: int = 0
    clip_norm: float | None = None  # global-norm threshold (the lecture's rule)
    clip_value: float | None = None  # element-wise clipping
    patience: int | None = None  # early stopping: epochs without a better validation loss
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int | None = None  # torch.set_num_threads on CPU
    compile: bool = False  # torch.compile the training step's model.loss (not evaluation)
    # "bfloat16": training steps run under torch.autocast (weights, optimiser and loss stay
    # float32); evaluation always computes in float32
    autocast: str | None = None
    log_every: int = 100
    save_every: int | None = None  # steps between mid-epoch checkpoints
    # keep the checkpoints of the last k epochs as epochN.pt (for `elman average`); None: none
    keep_epochs: int | None = None
    max_steps: int | None = None  # stop (resumably) after this many steps in all
    # a progress bar on a terminal; without one (false, or output to a file) a line every 30 s
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        self._check_names()
        self._check_counts()
        self._check_rates()

    def _check_names(self) -> None:
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast {self.autocast!r} unknown; valid: bfloat16 (or none)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {self.optimizer!r} unknown; valid: {', '.join(OPTIMIZERS)}"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device {self.device!r} unknown; valid: auto, cpu, cuda, cuda:N, mps")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} unknown; valid: {', '.join(SCHEDULES)}")
        start = self.average_start
        if isinstance(start, str) and start != "plateau" or isinstance(start, int) and start < 1:
            raise ValueError(f"average_start must be an epoch >= 1 or 'plateau', got {start!r}")

    def _check_counts(self) -> None:
        """Counts of epochs, steps and threads: at least 1 (0 or less would crash or do nothing)."""
        for name in ("epochs", "log_every", "decay_start"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be at least 0, got {self.finetune_epochs}")
        for name in ("max_steps", "save_every", "keep_epochs", "patience", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or unset), got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0 … {MAX_SEED} (2**32 - 1), got {self.seed}")

    def _check_rates(self) -> None:
        # torch's optimisers would raise these mid-setup, as a traceback; a NaN or infinite rate
        # would turn the weights non-finite at the first step
        for name in ("lr", "momentum", "weight_decay", "min_lr", "min_improvement"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_RATE:  # NaN fails too
                raise ValueError(
                    f"{name} must be >= 0 and at most {MAX_RATE:.3g} (float32), got {value}"
                )
        if not 0 < self.lr_decay <= 1:  # NaN fails too
            raise ValueError(f"lr_decay must be in (0, 1] (1: never decay), got {self.lr_decay}")
        if self.min_improvement >= 1:
            raise ValueError(f"min_improvement must be below 1, got {self.min_improvement}")
        # clip_norm may be +inf in Python (the gradient lab logs norms without clipping); a
        # recipe cannot write inf (elman.config refuses non-finite floats)
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and not value > 0:  # NaN fails too
                raise ValueError(f"{name} must be > 0, got {value}")
