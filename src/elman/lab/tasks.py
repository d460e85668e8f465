"""The long-range benchmark tasks, generated and seeded by elman, and the models that learn them.

**Adding problem** (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015). Input: T
steps of (value, marker) pairs, values ~ U(0, 1), markers 0 except two 1s, the first at a
uniformly drawn step of the first half [0, ⌊T/2⌋), the second of the second half [⌊T/2⌋, T).
Target: the sum of the two marked values. It has mean 1 and variance 2 · 1/12 = 1/6, so the
trivial predictor ŷ = 1 has MSE 1/6 ≈ 0.167; a model must carry one value over ≥ T/2 steps.

**Copy memory** (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016). Symbols 1..8 are data,
0 is blank, 9 the delimiter. Input: 10 random data symbols, T − 1 blanks, the delimiter, 10
blanks (T + 20 steps). Target: T + 10 blanks, then the 10 data symbols. Predicting blanks and
then a uniform guess scores a cross entropy of 10 ln 8 / (T + 20) per step (the baseline).

Example, T = 3 and 4 data symbols instead of 10::

    input   6 2 8 1 0 0 9 0 0 0 0
    target  0 0 0 0 0 0 0 6 2 8 1

Training batches are drawn fresh (an endless training set), batch i of epoch e from its own
seed, so a run is reproducible and resumable; validation and test sets are fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.lab.cells import build_recurrent

COPY_SYMBOLS = 8  # data symbols 1..8
COPY_LENGTH = 10  # symbols to remember
BLANK, DELIMITER = 0, 9
TRIVIAL_ADDING_MSE = 1.0 / 6.0


def adding_problem(n: int, T: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences: inputs (T, n, 2) of (value, marker), targets (n,)."""
    if T < 2:
        raise ValueError(f"T={T} is not accepted; the adding problem needs T >= 2")
    values = torch.rand(T, n, generator=generator)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    cols = torch.arange(n)
    markers = torch.zeros(T, n)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    targets = values[first, cols] + values[second, cols]
    return torch.stack([values, markers], dim=2), targets  # (T, n, 2), (n,)


def copy_memory(n: int, T: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences: input and target symbol ids, each (T + 20, n)."""
    if T < 1:
        raise ValueError(f"T={T} is not accepted; the copy task needs T >= 1")
    data = torch.randint(1, COPY_SYMBOLS + 1, (COPY_LENGTH, n), generator=generator)
    length = T + 2 * COPY_LENGTH
    inputs = torch.full((length, n), BLANK, dtype=torch.long)
    targets = torch.full((length, n), BLANK, dtype=torch.long)
    inputs[:COPY_LENGTH] = data
    inputs[COPY_LENGTH + T - 1] = DELIMITER
    targets[-COPY_LENGTH:] = data
    return inputs, targets


def copy_baseline(T: int) -> float:
    """Cross entropy per step of blanks, then a uniform guess: 10 ln 8 / (T + 20)."""
    return COPY_LENGTH * torch.log(torch.tensor(float(COPY_SYMBOLS))).item() / (T + 2 * COPY_LENGTH)


GENERATORS: dict[str, Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]] = {
    "adding": adding_problem,
    "copy": copy_memory,
}


# --- data objects for the one trainer ------------------------------------------------
@dataclass
class TaskBatch:
    inputs: Tensor  # (T, B, 2) float for adding, (T', B) ids for copy
    targets: Tensor  # (B,) or (T', B)


def _seed(seed: int, epoch: int, index: int) -> int:
    return (seed << 40) + (epoch << 24) + index  # distinct for epochs and indices < 2^24


class FreshBatches:
    """``steps`` new training batches per epoch; batch i of epoch e always the same."""

    def __init__(self, task: str, T: int, batch_size: int, steps: int, seed: int) -> None:
        self.make = GENERATORS[task]
        self.T, self.batch_size, self.steps, self.seed = T, batch_size, steps, seed
        self.epoch = 1

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iter_from(self, index: int) -> Iterator[TaskBatch]:
        for i in range(index, self.steps):
            g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, i))
            yield TaskBatch(*self.make(self.batch_size, self.T, g))


class FixedSet:
    """``size`` sequences drawn once with ``seed``, served in batches of ``batch_size``."""

    def __init__(self, task: str, T: int, size: int, seed: int, batch_size: int = 1000) -> None:
        inputs, targets = GENERATORS[task](size, T, torch.Generator().manual_seed(seed))
        self.batches = [
            TaskBatch(inputs[:, i : i + batch_size], targets[..., i : i + batch_size])
            for i in range(0, size, batch_size)
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def iter_from(self, index: int) -> Iterator[TaskBatch]:
        return iter(self.batches[index:])


# --- models ----------------------------------------------------------------------------
def task_recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    input_std: float | None,
    activation: str | None,
    init: str | None,
) -> nn.Module:
    """The one recurrent layer of an adding or copy model; ``input_std``: W_hx ~ N(0, std²)."""
    recurrent = build_recurrent(
        cell, input_size, hidden_size, fused=True, activation=activation, init=init
    )
    if input_std is not None:
        nn.init.normal_(recurrent.cell(0).weight_ih, 0.0, input_std)
    return recurrent


class SquaredError(nn.Module):
    """The adding problem's loss and metrics, for any model that maps inputs to one number."""

    def loss(self, batch: TaskBatch, state: Any = None) -> tuple[Tensor, int, None]:
        """Summed squared error and the number of sequences (the trainer's "tokens")."""
        err = self(batch.inputs) - batch.targets
        return (err * err).sum(), batch.targets.shape[0], None

    @torch.no_grad()
    def metrics(self, data: FixedSet) -> dict[str, float]:
        sse, n = 0.0, 0
        for batch in data.iter_from(0):
            loss_sum, count, _ = self.loss(batch)
            sse, n = sse + loss_sum.item(), n + count
        return {"loss": sse / n, "mse": sse / n}


class AddingModel(SquaredError):
    """ŷ = w · h_T + b from the last state of one recurrent layer; J = mean (ŷ − y)².

    ``input_std``: when set, W_hx ~ N(0, input_std²) instead of the cell's default (Le et al.
    draw the non-recurrent weights with std 0.001 for the IRNN). ``activation`` and ``init``
    name the arm of cell ``rnn`` (:func:`elman.lab.cells.rnn_options`).
    """

    def __init__(
        self,
        cell: str,
        hidden_size: int,
        input_std: float | None = None,
        activation: str | None = None,
        init: str | None = None,
    ) -> None:
        super().__init__()
        self.recurrent = task_recurrent(cell, 2, hidden_size, input_std, activation, init)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x (T, B, 2) -> ŷ (B,)."""
        h, _ = self.recurrent(x)  # (T, B, H)
        return self.out(h[-1]).squeeze(-1)


class CopyModel(nn.Module):
    """One-hot symbols -> one recurrent layer -> a softmax over the 9 output symbols per step;
    J = mean cross entropy over every step of every sequence (as Arjovsky et al. 2016)."""

    def __init__(
        self,
        cell: str,
        hidden_size: int,
        input_std: float | None = None,
        activation: str | None = None,
        init: str | None = None,
    ) -> None:
        super().__init__()
        self.recurrent = task_recurrent(
            cell, DELIMITER + 1, hidden_size, input_std, activation, init
        )
        self.out = nn.Linear(hidden_size, COPY_SYMBOLS + 1)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs (T', B) ids -> logits (T', B, 9)."""
        x = F.one_hot(inputs, DELIMITER + 1).to(self.out.weight.dtype)  # (T', B, 10)
        h, _ = self.recurrent(x)
        return self.out(h)

    def loss(self, batch: TaskBatch, state: Any = None) -> tuple[Tensor, int, None]:
        logits = self(batch.inputs)
        loss_sum = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="sum"
        )
        return loss_sum, batch.targets.numel(), None

    @torch.no_grad()
    def metrics(self, data: FixedSet) -> dict[str, float]:
        """Mean cross entropy per step, and the accuracy on the 10 symbols to be copied."""
        ce, steps, right, copied = 0.0, 0, 0, 0
        for batch in data.iter_from(0):
            logits = self(batch.inputs)
            ce += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="sum"
            ).item()
            steps += batch.targets.numel()
            guess = logits[-COPY_LENGTH:].argmax(-1)  # (10, B)
            right += int((guess == batch.targets[-COPY_LENGTH:]).sum())
            copied += guess.numel()
        return {"loss": ce / steps, "accuracy": right / copied}


MODELS: dict[str, type[nn.Module]] = {"adding": AddingModel, "copy": CopyModel}
