"""Translation batches: layout, the token budget, bucketing, determinism, every pair once."""

from __future__ import annotations

import random

import torch

from elman.data.batching import IGNORE_INDEX
from elman.data.pair_batches import TokenBatches, cut_by_budget, make_batch, pad_sources
from elman.data.subword import BOS_ID, EOS_ID


def random_pairs(n: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    src = [[rng.randrange(4, 30) for _ in range(rng.randint(0, 25))] for _ in range(n)]
    tgt = [[rng.randrange(4, 30) for _ in range(rng.randint(0, 25))] for _ in range(n)]
    return src, tgt


def test_make_batch_layout():
    b = make_batch([[10, 11], [12]], [[20, 21], []], index=[7, 3])
    assert b.src.tolist() == [[10, 11, EOS_ID], [12, EOS_ID, 0]]
    assert b.src_lengths.tolist() == [3, 2]
    assert b.tgt_in.tolist() == [[BOS_ID, 20, 21], [BOS_ID, 0, 0]]
    assert b.tgt_out.tolist() == [[20, 21, EOS_ID], [EOS_ID, IGNORE_INDEX, IGNORE_INDEX]]
    assert b.num_tokens == 4 and b.index.tolist() == [7, 3]
    src, lengths = pad_sources([[], [5, 6]])  # an empty source is still one step: </s>
    assert src.tolist() == [[EOS_ID, 0, 0], [5, 6, EOS_ID]] and lengths.tolist() == [1, 3]


def test_cut_by_budget_keeps_order_and_budget_and_never_drops():
    cost = [3, 3, 5, 5, 50, 2]
    assert cut_by_budget(range(6), cost, 10) == [[0, 1], [2, 3], [4], [5]]


def test_every_pair_once_per_epoch_within_budget_and_reshuffled():
    src, tgt = random_pairs(500)
    data = TokenBatches(src, tgt, max_tokens=200, shuffle=True, seed=3)
    orders = []
    for epoch in (1, 2):
        data.set_epoch(epoch)
        seen = []
        for b in data.iter_from(0):
            B, width = b.src.shape[0], max(b.src.shape[1], b.tgt_in.shape[1])
            assert B == 1 or B * width <= 200
            assert b.num_tokens == int((b.tgt_out != IGNORE_INDEX).sum())
            for row, i in enumerate(b.index.tolist()):
                n = len(src[i]) + 1
                assert b.src[row, :n].tolist() == [*src[i], EOS_ID]
                assert b.tgt_out[row, : len(tgt[i]) + 1].tolist() == [*tgt[i], EOS_ID]
            seen += b.index.tolist()
        assert sorted(seen) == list(range(500))
        assert len(data) == len([1 for _ in data.iter_from(0)])
        orders.append(seen)
    assert orders[0] != orders[1]
    again = TokenBatches(src, tgt, max_tokens=200, shuffle=True, seed=3)
    again.set_epoch(2)
    assert [b.index.tolist() for b in again.iter_from(4)] == [
        b.index.tolist() for b in data.iter_from(4)
    ]


def test_buckets_hold_similar_lengths():
    src, tgt = random_pairs(2000, seed=1)
    data = TokenBatches(src, tgt, max_tokens=400, shuffle=True, seed=1)
    padded = sum(b.src.numel() for b in data)
    real = sum(int(b.src_lengths.sum()) for b in data)
    assert real / padded > 0.85  # random batches of these lengths are about 0.55 real


def test_unshuffled_batches_are_sorted_by_length():
    src, tgt = random_pairs(100, seed=2)
    data = TokenBatches(src, tgt, max_tokens=300)
    lengths = [len(src[i]) for b in data for i in b.index.tolist()]
    assert lengths == sorted(lengths)
    assert torch.cat([b.index for b in data]).sort().values.tolist() == list(range(100))
