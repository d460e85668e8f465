"""Batches of sentence pairs for translation: bucketed by length, a budget of tokens per batch.

A pair is the source's piece ids and the target's. In a batch the source gets the end piece
``</s>`` (so an empty line is still one step long), and the target is read shifted by one,
teacher forcing: the decoder reads ``<s> y_1 … y_n`` and predicts ``y_1 … y_n </s>``::

    pairs          "ein Hund" -> "a dog"     "Hallo" -> "hi"        B = 2
    src            [[ein, Hund, </s>],       [Hallo, </s>, ·]]      (B, S), · = <pad> = 0
    src_lengths    [3, 2]
    tgt_in         [[<s>, a, dog],           [<s>, hi, ·]]          (B, T)
    tgt_out        [[a, dog, </s>],          [hi, </s>, -100]]      (B, T), -100 where padded

Padded target positions hold ``IGNORE_INDEX`` (-100), so they are out of every loss; padded
source positions are out of the encoder (its recurrences stop at the true length) and of the
attention (masked), so padding never changes what a model computes for a sentence.

**Budget.** A batch holds as many pairs as fit ``max_tokens`` >= B · max(S, T), the padded size
of its larger side, so long sentences come in small batches and short ones in large batches, and
every step costs about the same. **Buckets.** For training, every epoch shuffles the pairs (from
the seed and the epoch number alone, so a resumed run sees the same batches), sorts them by
length within pools of about 50 batches (pairs of similar length share a batch: little
padding), cuts the pools into batches and shuffles the batches. Without shuffling the pairs are
sorted by length over the whole set; every batch's ``index`` gives its pairs' places in the input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from elman.data.batching import IGNORE_INDEX
from elman.data.subword import BOS_ID, EOS_ID, PAD_ID
from elman.errors import ElmanError


@dataclass
class PairBatch:
    """One batch of pairs (module docstring).

    Attributes:
        src: (B, S) source ids ending in ``</s>``, ``<pad>`` = 0 after the end.
        src_lengths: (B,) true source lengths (``</s>`` included).
        tgt_in: (B, T) the decoder's inputs ``<s> y_1 … y_n``, 0-padded.
        tgt_out: (B, T) its targets ``y_1 … y_n </s>``, ``IGNORE_INDEX`` where padded.
        num_tokens: the number of real targets (Python int, no device sync).
        index: (B,) the pairs' positions in the list they were batched from.
    """

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    num_tokens: int
    index: Tensor

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(
            self.src.to(device),
            self.src_lengths.to(device),
            self.tgt_in.to(device),
            self.tgt_out.to(device),
            self.num_tokens,
            self.index.to(device),
        )

    def __len__(self) -> int:
        """B, the pairs of the batch."""
        return self.src.size(0)

    def rows(self, start: int, end: int) -> PairBatch:
        """Pairs ``start`` … ``end`` − 1 (at least one; one process's share of a global batch).

        The columns that are padding in every chosen pair are dropped: padding never changes
        what a model computes, and the narrower batch costs less.
        """
        src_lengths = self.src_lengths[start:end]
        tgt_out = self.tgt_out[start:end]
        real = tgt_out != IGNORE_INDEX
        S, T = int(src_lengths.max()), int(real.sum(dim=1).max())
        return PairBatch(
            self.src[start:end, :S],
            src_lengths,
            self.tgt_in[start:end, :T],
            tgt_out[:, :T],
            num_tokens=int(real.sum()),
            index=self.index[start:end],
        )


def pad_sources(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Source id lists -> (src (B, S) with ``</s>`` appended and 0-padded, lengths (B,))."""
    lengths = [len(s) + 1 for s in seqs]
    src = torch.full((len(seqs), max(lengths)), PAD_ID, dtype=torch.long)
    for row, s in enumerate(seqs):
        src[row, : len(s) + 1] = torch.tensor([*s, EOS_ID], dtype=torch.long)
    return src, torch.tensor(lengths, dtype=torch.long)


def make_batch(
    src_seqs: Sequence[Sequence[int]],
    tgt_seqs: Sequence[Sequence[int]],
    index: Sequence[int] | None = None,
) -> PairBatch:
    """Pad a list of pairs into a :class:`PairBatch`."""
    src, src_lengths = pad_sources(src_seqs)
    T = max(len(t) for t in tgt_seqs) + 1
    tgt_in = torch.full((len(tgt_seqs), T), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(tgt_seqs), T), IGNORE_INDEX, dtype=torch.long)
    for row, t in enumerate(tgt_seqs):
        tgt_in[row, : len(t) + 1] = torch.tensor([BOS_ID, *t], dtype=torch.long)
        tgt_out[row, : len(t) + 1] = torch.tensor([*t, EOS_ID], dtype=torch.long)
    index = range(len(src_seqs)) if index is None else index
    return PairBatch(
        src,
        src_lengths,
        tgt_in,
        tgt_out,
        num_tokens=sum(len(t) + 1 for t in tgt_seqs),
        index=torch.tensor(list(index), dtype=torch.long),
    )


def cut_by_budget(order: Sequence[int], cost: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Cut ``order`` into consecutive batches with len(batch) · max(cost) <= ``max_tokens``.

    A single pair over the budget is a batch of its own (it is never dropped).
    """
    batches: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for i in order:
        w = max(widest, cost[i])
        if current and (len(current) + 1) * w > max_tokens:
            batches.append(current)
            current, w = [], cost[i]
        current.append(i)
        widest = w
    if current:
        batches.append(current)
    return batches


class TokenBatches:
    """The pairs of one split in batches of at most ``max_tokens`` padded tokens (module doc).

    ``len()`` is the number of batches of the current epoch (``set_epoch``); ``iter_from(i)``
    yields that epoch's batches from the i-th on (the trainer's data contract).
    """

    POOL_BATCHES = 50  # pools of about this many batches are sorted by length

    def __init__(
        self,
        src_seqs: Sequence[Sequence[int]],
        tgt_seqs: Sequence[Sequence[int]],
        max_tokens: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if len(src_seqs) != len(tgt_seqs):
            raise ValueError(f"{len(src_seqs)} sources but {len(tgt_seqs)} targets")
        if not src_seqs:
            raise ElmanError("no sentence pairs to batch")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.src, self.tgt = src_seqs, tgt_seqs
        self.max_tokens, self.shuffle, self.seed = max_tokens, shuffle, seed
        # padded width of a pair: source + </s>, target + </s> (or <s>)
        self.cost = [max(len(s), len(t)) + 1 for s, t in zip(src_seqs, tgt_seqs, strict=True)]
        self.epoch = 1
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[list[int]]:
        """The pair indices of every batch of this epoch, in the order they are seen."""
        if self._cached is not None and self._cached[0] == self.epoch:
            return self._cached[1]
        n = len(self.cost)
        key = lambda i: (len(self.src[i]), len(self.tgt[i]), i)  # noqa: E731
        if not self.shuffle:
            batches = cut_by_budget(sorted(range(n), key=key), self.cost, self.max_tokens)
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            perm = torch.randperm(n, generator=g).tolist()
            mean_cost = max(1, sum(self.cost) // n)
            pool = max(1, self.POOL_BATCHES * self.max_tokens // mean_cost)
            batches = []
            for start in range(0, n, pool):
                chunk = sorted(perm[start : start + pool], key=key)
                batches += cut_by_budget(chunk, self.cost, self.max_tokens)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        self._cached = (self.epoch, batches)
        return batches

    def __len__(self) -> int:
        return len(self._order())

    def iter_from(self, i: int) -> Iterator[PairBatch]:
        for ids in self._order()[i:]:
            yield make_batch([self.src[j] for j in ids], [self.tgt[j] for j in ids], ids)

    def __iter__(self) -> Iterator[PairBatch]:
        return self.iter_from(0)
