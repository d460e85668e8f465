"""BPTT batching that scores every token exactly once.

A language model reads ``x_t`` and predicts ``x_{t+1}``.  :class:`BPTTStream` turns one
long id sequence into the (T, B) chunks truncated back-propagation through time walks
over, with the hidden state of column j carried from one chunk to the next.

Unlike the usual ``batchify`` (pytorch/examples word_language_model), nothing is lost:
no tail is dropped to make the length divisible by B, and the first token of each column
is predicted too, because its input is the true preceding token of the stream.  The
ragged end is padded and masked, so a sum of losses over ``mask`` is the sum over every
token of the split, and exp(sum / num_tokens) is the split's perplexity.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from elman.errors import ElmanError

# Targets at padded positions hold this value: the default ``ignore_index`` of
# F.cross_entropy, so padding is ignored even by a loss that forgets the mask, and an
# indexing bug fails loudly instead of scoring a real word.
IGNORE_INDEX = -100


@dataclass
class Batch:
    """One BPTT chunk.

    Attributes:
        inputs: shape (T, B), the ids read at each step.
        targets: shape (T, B), the ids to predict; ``IGNORE_INDEX`` where padded.
        mask: shape (T, B), bool, True where ``targets`` is a real token.
        num_tokens: ``mask.sum()`` as a Python int (no device sync).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    num_tokens: int

    def to(self, device: torch.device | str) -> Batch:
        """This batch on ``device``."""
        return Batch(
            self.inputs.to(device),
            self.targets.to(device),
            self.mask.to(device),
            self.num_tokens,
        )


class BPTTStream:
    """The prediction task over ``ids``, cut into B columns and chunks of ``bptt`` steps.

    Targets are ``ids`` themselves, each scored once; inputs are the ids shifted right by
    one, with ``start_id`` in front::

        ids      a  b  c  d  e  f  g  h  i  j          N = 10, start_id = <s>
        inputs  <s> a  b  c  d  e  f  g  h  i
        targets  a  b  c  d  e  f  g  h  i  j

    With ``start_id=None`` (a corpus with no start token) the first id is only context:
    inputs = ids[:-1], targets = ids[1:], and N - 1 tokens are scored.

    The N' scored positions are laid out in B contiguous columns of L = ceil(N'/B) rows;
    the tail of the last column is padded (``·``) and masked.  Column j continues
    exactly where column j - 1 stops, so its first input is the true preceding token.
    With B = 3, bptt = 3 (L = ceil(10/3) = 4)::

                  inputs            targets            mask
               col0 col1 col2    col0 col1 col2    col0 col1 col2
        t=0  ┌  <s>   d    h       a    e    i       1    1    1  ┐
        t=1  │   a    e    i       b    f    j       1    1    1  │ batch(0), T = 3
        t=2  └   b    f    ·       c    g    ·       1    1    0  ┘
        t=3  ─   c    g    ·       d    h    ·       1    1    0  ─ batch(1), T = 1

    For every column, ``inputs[t + 1] == targets[t]``, also across chunk boundaries: the
    hidden state of column j after batch(i) is the right one to start batch(i + 1).
    ``len(stream)`` = ceil(L / bptt) chunks; every chunk but the last has T = bptt.

    Args:
        ids: shape (N,), the token ids of one split.
        batch_size: B, the number of parallel columns.
        bptt: T, the number of steps per chunk (the truncation length).
        start_id: the input before the first token (the ``<eos>`` id for line-based
            corpora: the stream starts as if after a sentence end), or None.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, bptt: int, start_id: int | None) -> None:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() != 1:
            raise ValueError(f"ids must have shape (N,), got {tuple(ids.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        if start_id is None:
            inputs, targets = ids[:-1], ids[1:]
        else:
            inputs = torch.cat([ids.new_tensor([start_id]), ids[:-1]])
            targets = ids
        n = targets.numel()
        if n == 0:
            raise ElmanError(
                f"the token stream has {ids.numel()} token(s): nothing to predict "
                "(a split needs at least two tokens, or one with a start token)"
            )
        self.batch_size = batch_size
        self.bptt = bptt
        self.start_id = start_id
        self.total_tokens = n  # number of scored tokens, N'
        self.length = -(-n // batch_size)  # L = ceil(N' / B)
        pad = batch_size * self.length - n
        mask = torch.arange(batch_size * self.length) < n
        # (B * L,) -> (B, L) -> (L, B): column j holds positions j*L ... (j+1)*L - 1.
        self.inputs = F.pad(inputs, (0, pad), value=0).view(batch_size, -1).t().contiguous()
        self.targets = (
            F.pad(targets, (0, pad), value=IGNORE_INDEX).view(batch_size, -1).t().contiguous()
        )
        self.mask = mask.view(batch_size, -1).t().contiguous()  # (L, B)
        self._count_chunk_tokens()

    def _count_chunk_tokens(self) -> None:
        """The scored tokens of each BPTT chunk, from ``mask``."""
        per_row = self.mask.sum(dim=1)  # (L,)
        steps = range(0, self.length, self.bptt)
        self._chunk_tokens = [int(per_row[s : s + self.bptt].sum()) for s in steps]

    def __len__(self) -> int:
        return len(self._chunk_tokens)

    def batch(self, i: int) -> Batch:
        """Chunk ``i`` (0 <= i < len(self)): rows i*bptt ... (i+1)*bptt - 1."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch index {i} out of range for {len(self)} batches")
        rows = slice(i * self.bptt, (i + 1) * self.bptt)
        return Batch(self.inputs[rows], self.targets[rows], self.mask[rows], self._chunk_tokens[i])

    def iter_from(self, i: int) -> Iterator[Batch]:
        """Batches i, i+1, ..., len(self) - 1: resume exactly after batch i - 1."""
        for k in range(i, len(self)):
            yield self.batch(k)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def columns(self, start: int, stop: int) -> BPTTStream:
        """A copy holding only columns ``start`` … ``stop - 1`` (one rank's share of a batch).

        Every column keeps its place in the stream, so the chunks (and the carried state of
        each column) are those the full stream has; only the token counts become the share's.
        """
        if not 0 <= start < stop <= self.batch_size:
            raise ValueError(f"columns {start}:{stop} out of range for {self.batch_size}")
        part = copy.copy(self)
        part.batch_size = stop - start
        part.inputs = self.inputs[:, start:stop].contiguous()
        part.targets = self.targets[:, start:stop].contiguous()
        part.mask = self.mask[:, start:stop].contiguous()
        part.total_tokens = int(part.mask.sum())
        part._count_chunk_tokens()
        return part

    def to(self, device: torch.device | str) -> BPTTStream:
        """A copy whose tensors live on ``device`` (move once, then batches cost nothing)."""
        moved = copy.copy(self)
        moved.inputs = self.inputs.to(device)
        moved.targets = self.targets.to(device)
        moved.mask = self.mask.to(device)
        return moved

    def __repr__(self) -> str:
        return (
            f"BPTTStream(tokens={self.total_tokens}, batch_size={self.batch_size}, "
            f"bptt={self.bptt}, length={self.length}, batches={len(self)})"
        )
