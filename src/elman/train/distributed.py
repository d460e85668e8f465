"""Data-parallel training over several processes (``torchrun``), for every trained task.

``torchrun --nproc-per-node W -m elman train RECIPE.toml`` starts W copies of ``elman train``
with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. :func:`init_from_env` joins them into one
process group (gloo on the CPU, NCCL on CUDA); the trainer wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel` through :class:`LossModule`, so that DDP's
forward hook runs for ``model.loss``; evaluation and checkpoints use the unwrapped model.

What scales: the B rows of every global batch, which stays the recipe's. The BPTT language
model's rank r reads columns r·B/W … (r+1)·B/W - 1 of the stream layout one process would use
(:func:`shard_columns`); the other tasks' rank r takes its consecutive slice of the rows of each
batch the one-process data yields (:func:`shard_rows`; the batch order depends on the seed and
the epoch only, so every rank sees the same global batches). The run computes what one process
computes, up to float summation order:

* each rank's loss is its summed cross entropy divided by ``global tokens / W``
  (:func:`loss_denominator`); DDP averages the gradients over the W ranks, so the gradient is
  that of (sum over all ranks) / (global tokens), the single-process per-token mean. With equal
  token counts per rank this is each rank's own mean; the shared denominator keeps it exact
  also for the last, padded chunk and for slices of unequal sizes.
* a rank whose slice would be empty (a global batch of fewer rows than processes, e.g. a lone
  long sentence pair) steps on a stand-in: the batch's last row with ``num_tokens`` = 0, whose
  loss :class:`LossModule` multiplies by 0. It joins DDP's gradient all-reduce and adds nothing.
* only rank 0 writes (metrics, checkpoints, recipe.json, results.json) and prints; the
  validation loss it computes is broadcast, so every rank schedules the same learning rate.
* the carried BPTT state is gathered into the checkpoint in the one-process column layout,
  so ``--resume`` continues exactly, mid-epoch too (each rank takes its columns back).

Without ``WORLD_SIZE`` > 1 every helper here is a no-op and a run is a plain one-process run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn

from elman.errors import ElmanError

STATE_BATCH_DIM = 1  # recurrent states are (layers, B, H)


def requested() -> bool:
    """True when launched by torchrun (or by hand) with ``WORLD_SIZE`` above 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False for a plain run.

    The backend is NCCL when the run trains on CUDA (each process on GPU ``LOCAL_RANK``), else
    gloo. Calling it again once initialised does nothing.
    """
    if not requested():
        return False
    if active():
        return True
    if not dist.is_available():
        raise ElmanError("WORLD_SIZE > 1 asks for several processes, but torch.distributed is off")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ElmanError(
                f"WORLD_SIZE > 1 but {name} is not set; start several processes with "
                "torchrun --nproc-per-node N -m elman train …"
            )
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """The process that writes files and prints: rank 0, or the only one."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def cleanup(finished: bool = True) -> None:
    """Leave the process group (at the end of ``elman train``).

    After a run that ``finished`` (its last step, or ``max_steps``), the ranks first meet at a
    barrier, so that they tear the group down together: a rank that closed its gloo connections
    while rank 0 was still writing the last checkpoint aborted at exit in one CI run ("terminate
    called without an active exception"). After an error there is no barrier: the other ranks
    may never come to it.
    """
    if dist.is_available() and dist.is_initialized():
        if finished:
            barrier()
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_float(value: float) -> float:
    """Rank 0's ``value`` on every rank (e.g. the validation loss the LR schedule reads)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.broadcast(t, src=0)
    return float(t.item())


def all_reduce_sum(t: Tensor) -> Tensor:
    """The sum of ``t`` over ranks (in place, returned); ``t`` itself in a one-process run."""
    if active():
        dist.all_reduce(t)
    return t


def loss_denominator(n_tokens: int | Tensor) -> int | float | Tensor:
    """What a rank divides its loss sum by: its own token count (at least 1), or global count / W.

    DDP averages gradients over the W ranks, so dividing each rank's sum by (global tokens / W)
    gives the gradient of the global per-token mean, exactly as one process over all B columns.
    The global count is clamped to 1, not the quotient: a global batch of fewer tokens than
    ranks (one row, a stand-in beside it) must still divide by count / W.
    """
    if not active():
        return n_tokens.clamp(min=1) if isinstance(n_tokens, Tensor) else max(n_tokens, 1)
    t = torch.as_tensor(n_tokens, dtype=torch.float64, device=_comm_device()).clone()
    dist.all_reduce(t)
    return max(float(t.item()), 1.0) / world_size()


def shard_columns(stream: Any, key: str = "data.batch_size") -> Any:
    """This rank's columns of a BPTT stream (all of them in a one-process run).

    ``key`` names the recipe key of the global batch for the error when B % W != 0.
    """
    w = world_size()
    if w == 1:
        return stream
    if stream.batch_size % w:
        raise ElmanError(
            f"{key} = {stream.batch_size} does not split over {w} processes; choose a "
            f"multiple of the world size {w}"
        )
    return stream.columns(rank() * stream.batch_size // w, (rank() + 1) * stream.batch_size // w)


def row_span(n: int, rank: int, world: int) -> tuple[int, int]:
    """The rows ``start, end`` of an n-row global batch that ``rank`` of ``world`` takes.

    Consecutive slices whose sizes differ by at most one, larger ones first (the rule of
    ``torch.tensor_split``); r·n/W … (r+1)·n/W when W divides n, empty for the last ranks when
    n < W.
    """
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return start, start + size + int(rank < extra)


class RowShards:
    """This rank's rows of every global batch of ``data``, under the trainer's data contract.

    ``data`` yields the one-process batches (``len``, ``iter_from``, optional ``set_epoch`` and
    ``to``); each batch has ``len(batch)`` rows and ``batch.rows(start, end)``.
    """

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def to(self, device: torch.device | str) -> RowShards:
        return RowShards(self.data.to(device)) if hasattr(self.data, "to") else self

    def iter_from(self, i: int) -> Iterator[Any]:
        r, w = rank(), world_size()
        for batch in self.data.iter_from(i):
            n = len(batch)
            start, end = row_span(n, r, w)
            if start == end:  # fewer rows than ranks: a stand-in that scores nothing
                yield dataclasses.replace(batch.rows(n - 1, n), num_tokens=0)
            else:
                yield batch.rows(start, end)

    def __iter__(self) -> Iterator[Any]:
        return self.iter_from(0)


def shard_rows(data: Any, batch_size: int | None = None, key: str = "data.batch_size") -> Any:
    """This rank's rows of each batch of ``data`` (``data`` itself in a one-process run).

    ``batch_size``: the recipe's rows per global batch, where it fixes them; fewer than the
    processes is an ElmanError, as some rank would step on a stand-in at every step. ``key``
    names it in the error.
    """
    w = world_size()
    if w == 1:
        return data
    if batch_size is not None and batch_size < w:
        raise ElmanError(
            f"{key} = {batch_size} gives some of the {w} processes no rows; "
            f"choose at least the world size {w}"
        )
    return RowShards(data)


def _flat(state: Any) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else list(state)


def _pack(flat: list[Tensor], like: Any) -> Any:
    return flat[0] if isinstance(like, Tensor) else type(like)(flat)


def gather_state(state: Any) -> Any:
    """Every rank's carried state joined along the batch (the one-process layout); collective."""
    if not active() or state is None:
        return state
    joined = []
    for t in _flat(state):
        parts = [torch.empty_like(t) for _ in range(world_size())]
        dist.all_gather(parts, t.detach().contiguous())
        joined.append(torch.cat(parts, dim=STATE_BATCH_DIM))
    return _pack(joined, state)


def shard_state(state: Any) -> Any:
    """This rank's columns of a carried state stored in the one-process layout."""
    if not active() or state is None:
        return state
    parts = [t.chunk(world_size(), dim=STATE_BATCH_DIM)[rank()].contiguous() for t in _flat(state)]
    return _pack(parts, state)


class LossModule(nn.Module):
    """``model.loss`` as a forward, so DistributedDataParallel's hooks see the training step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, state: Any) -> Any:
        # every elman model's training contract (elman.train.trainer.LossModel)
        loss_fn = cast(Callable[..., Any], self.model.loss)
        loss_sum, n_tokens, state = loss_fn(batch, state)
        if isinstance(n_tokens, int) and n_tokens == 0:
            # a stand-in row (RowShards) or a batch without targets: it still runs backward,
            # so this rank joins the gradient all-reduce, but it adds nothing to the loss
            loss_sum = loss_sum * 0.0
        return loss_sum, n_tokens, state


def wrap(model: nn.Module) -> nn.Module:
    """A DDP-wrapped :class:`LossModule` around ``model`` (its parameters are ``model``'s)."""
    from torch.nn.parallel import DistributedDataParallel

    # A factored output (adaptive or class softmax) leaves a cluster without gradient when no
    # target falls in it.
    unused = getattr(model, "factored", None) is not None
    return DistributedDataParallel(LossModule(model), find_unused_parameters=unused)
