"""Context windows: every token of a stream with the n − 1 tokens before it.

A feed-forward language model (Bengio et al. 2003) predicts w_t from the fixed window
(w_{t−n+1}, …, w_{t−1}). :class:`ContextWindows` lays the prediction task out as one strided
view over the token stream (``Tensor.unfold``), so no window is ever built by a Python loop and
the windows cost no memory beyond the stream itself.

Every token is a target exactly once, ``<eos>`` included; the context before the first token is
padded with ``start_id`` (the ``<eos>`` id for line-based corpora), so the stream starts as if
after a sentence end, exactly as :class:`elman.data.batching.BPTTStream` starts the RNN LMs.
With context size n − 1 = 3 and ``start_id`` = <s>::

    ids          a  b  c  d  e                       N = 5
    padded      <s> <s> <s> a  b  c  d  e            3 pads, then the stream
    windows     row t = padded[t : t + 4]            (N, 4) view, strides (1, 1)

         context        target
    t=0  <s> <s> <s>    a
    t=1  <s> <s>  a     b
    t=2  <s>  a   b     c
    t=3   a   b   c     d
    t=4   b   c   d     e

With ``start_id=None`` (a corpus without a start token) the first id is context only and the
N − 1 later ids are scored, as in BPTTStream; the missing left context repeats the first id.

Training batches draw the windows in a random order that depends only on ``seed`` and the epoch
(``set_epoch``), so a resumed run sees the same batches; evaluation walks them in order. Batch i
holds windows ``order[i B : (i + 1) B]``; only the last batch may be shorter. ``epoch_size``
makes a training epoch a random subset of that many windows (validation, learning-rate decay and
checkpoints then come more often than once per pass over the corpus).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from elman.errors import ElmanError


@dataclass
class WindowBatch:
    """B context windows and the tokens they predict.

    Attributes:
        contexts: shape (B, n − 1), the ids w_{t−n+1}, …, w_{t−1}, oldest first.
        targets: shape (B,), the ids w_t.
        num_tokens: B, as a Python int (no device sync).
    """

    contexts: Tensor
    targets: Tensor
    num_tokens: int

    def __len__(self) -> int:
        """B, the windows of the batch."""
        return self.targets.size(0)

    def rows(self, start: int, end: int) -> WindowBatch:
        """Windows ``start`` … ``end`` − 1 (one process's share of a global batch)."""
        targets = self.targets[start:end]
        return WindowBatch(self.contexts[start:end], targets, targets.size(0))


class ContextWindows:
    """The windows of ``ids`` in batches of ``batch_size``, shuffled or in order.

    Args:
        ids: shape (N,), the token ids of one split.
        context_size: n − 1, the number of previous tokens each prediction reads (>= 1).
        batch_size: B, windows per batch.
        start_id: the id that pads the context before the first token (``<eos>``), or None.
        shuffle: a fresh random order every epoch (training) or the stream order (evaluation).
        seed: the order of epoch e is ``torch.randperm`` seeded with ``seed + e``.
        epoch_size: with ``shuffle``, an epoch is the first ``epoch_size`` windows of its random
            order (a fresh random subset each epoch) instead of all N'; None: all.
    """

    def __init__(
        self,
        ids: Tensor,
        context_size: int,
        batch_size: int,
        start_id: int | None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch_size: int | None = None,
    ) -> None:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() != 1:
            raise ValueError(f"ids must have shape (N,), got {tuple(ids.shape)}")
        if context_size < 1:
            raise ValueError(f"context_size must be >= 1, got {context_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if epoch_size is not None and (epoch_size < 1 or not shuffle):
            raise ValueError(f"epoch_size must be >= 1 and needs shuffle=True, got {epoch_size}")
        scored = ids.numel() if start_id is not None else ids.numel() - 1
        if scored < 1:
            raise ElmanError(
                f"the token stream has {ids.numel()} token(s): nothing to predict "
                "(a split needs at least two tokens, or one with a start token)"
            )
        self.ids = ids
        self.context_size = context_size
        self.batch_size = batch_size
        self.start_id = start_id
        self.shuffle = shuffle
        self.seed = seed
        self.total_tokens = scored
        self.epoch_size = scored if epoch_size is None else min(epoch_size, scored)
        self.epoch = 1
        self._view = self.windows  # built once; batches index into it
        self._order: Tensor | None = None
        self.set_epoch(1)

    @property
    def windows(self) -> Tensor:
        """All windows, shape (N', n): columns 0 … n − 2 the context, column n − 1 the target.

        A view of the padded stream (strides (1, 1)): window t shares storage with window t + 1.
        """
        n = self.context_size + 1
        pad_id = self.start_id if self.start_id is not None else int(self.ids[0])
        padded = torch.cat([self.ids.new_full((self.context_size,), pad_id), self.ids])
        windows = padded.unfold(0, n, 1)  # (N, n), no copy
        return windows if self.start_id is not None else windows[1:]

    def set_epoch(self, epoch: int) -> None:
        """Fix the order of ``epoch``'s batches (a no-op for in-order data)."""
        self.epoch = epoch
        if not self.shuffle:
            self._order = None
            return
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.total_tokens, generator=generator)
        self._order = order[: self.epoch_size].to(self.ids.device)

    def __len__(self) -> int:
        return -(-self.epoch_size // self.batch_size)

    def batch(self, i: int) -> WindowBatch:
        """Batch ``i`` (0 <= i < len(self)) of the current epoch."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch index {i} out of range for {len(self)} batches")
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        view = self._view
        chosen = view[rows] if self._order is None else view[self._order[rows]]  # (B, n)
        return WindowBatch(
            contexts=chosen[:, :-1].contiguous(),
            targets=chosen[:, -1].contiguous(),
            num_tokens=chosen.size(0),
        )

    def iter_from(self, i: int) -> Iterator[WindowBatch]:
        """Batches i, i + 1, …, len(self) − 1 of the current epoch (exact resume)."""
        for k in range(i, len(self)):
            yield self.batch(k)

    def __iter__(self) -> Iterator[WindowBatch]:
        return self.iter_from(0)

    def to(self, device: torch.device | str) -> ContextWindows:
        """A copy whose stream (and epoch order) live on ``device``."""
        moved = copy.copy(self)
        moved.ids = self.ids.to(device)
        moved._view = moved.windows
        moved._order = None if self._order is None else self._order.to(device)
        return moved

    def __repr__(self) -> str:
        return (
            f"ContextWindows(tokens={self.total_tokens}, context_size={self.context_size}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, epoch_size={self.epoch_size}, "
            f"batches={len(self)})"
        )
