import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elman.data.batching import IGNORE_INDEX, BPTTStream
from elman.errors import ElmanError


def check_stream(ids: torch.Tensor, B: int, bptt: int, start_id: int | None) -> None:
    stream = BPTTStream(ids, batch_size=B, bptt=bptt, start_id=start_id)
    expect_targets = ids if start_id is not None else ids[1:]
    expect_inputs = (
        torch.cat([torch.tensor([start_id]), ids[:-1]]) if start_id is not None else ids[:-1]
    )
    n = expect_targets.numel()
    L = math.ceil(n / B)
    batches = list(stream)
    assert len(stream) == len(batches) == math.ceil(L / bptt)
    assert all(b.inputs.shape[0] == bptt for b in batches[:-1])
    inputs = torch.cat([b.inputs for b in batches])  # (L, B)
    targets = torch.cat([b.targets for b in batches])
    mask = torch.cat([b.mask for b in batches])
    assert inputs.shape == targets.shape == mask.shape == (L, B)
    assert mask.dtype == torch.bool
    assert sum(b.num_tokens for b in batches) == n == int(mask.sum())
    assert all(b.num_tokens == int(b.mask.sum()) for b in batches)
    # Every target scored exactly once, in stream order (column-major), each with its input.
    assert torch.equal(targets.t()[mask.t()], expect_targets)
    assert torch.equal(inputs.t()[mask.t()], expect_inputs)
    assert (targets[~mask] == IGNORE_INDEX).all()
    # Continuity: inside a column the next input is the previous target, and column j
    # starts with the true token preceding it (the last target of column j - 1).
    both = mask[:-1] & mask[1:]
    assert torch.equal(inputs[1:][both], targets[:-1][both])
    for j in range(1, B):
        if mask[0, j]:
            assert inputs[0, j] == targets[-1, j - 1]
    # Padding only at the end of the stream: the mask, read column-major, is 1...10...0.
    flat = mask.t().reshape(-1).int()
    assert flat[:n].all() and not flat[n:].any()


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 60),
    B=st.integers(1, 9),
    bptt=st.integers(1, 12),
    with_start=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_token_once_and_continuity(n, B, bptt, with_start, seed):
    if not with_start and n < 2:
        n = 2
    ids = torch.randint(2, 50, (n,), generator=torch.Generator().manual_seed(seed))
    check_stream(ids, B, bptt, 1 if with_start else None)


def test_docstring_example():
    # ids a..j = 10..19, <s> = 1, B = 3, bptt = 3 (the diagram in BPTTStream's docstring).
    stream = BPTTStream(torch.arange(10, 20), batch_size=3, bptt=3, start_id=1)
    assert len(stream) == 2
    b0, b1 = stream
    assert b0.inputs.tolist() == [[1, 13, 17], [10, 14, 18], [11, 15, 0]]
    assert b0.targets.tolist() == [[10, 14, 18], [11, 15, 19], [12, 16, IGNORE_INDEX]]
    assert b0.mask.tolist() == [[True] * 3, [True] * 3, [True, True, False]]
    assert b1.inputs.tolist() == [[12, 16, 0]]
    assert b1.targets.tolist() == [[13, 17, IGNORE_INDEX]]
    assert (b0.num_tokens, b1.num_tokens) == (8, 2)


def test_iter_from_resumes_exactly():
    stream = BPTTStream(torch.arange(103), batch_size=4, bptt=5, start_id=0)
    full = list(stream)
    for i in (0, 1, 3, len(stream) - 1, len(stream)):
        rest = list(stream.iter_from(i))
        assert len(rest) == len(full) - i
        for a, b in zip(rest, full[i:], strict=True):
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
            assert torch.equal(a.mask, b.mask) and a.num_tokens == b.num_tokens
    with pytest.raises(IndexError):
        stream.batch(len(stream))


def test_batched_bigram_nll_equals_unbatched():
    """A bigram model scored through the stream gives the same total NLL as a plain loop."""
    rng = np.random.default_rng(0)
    V, n = 7, 97
    ids = rng.integers(1, V, n)
    logp = np.log(rng.dirichlet(np.ones(V), size=V))  # logp[prev, next]
    prev = np.concatenate([[0], ids[:-1]])  # start_id 0
    reference = -logp[prev, ids].sum()
    table = torch.tensor(logp)
    total = 0.0
    for b in BPTTStream(torch.tensor(ids), batch_size=5, bptt=6, start_id=0):
        scores = table[b.inputs]  # (T, B, V)
        nll = torch.nn.functional.nll_loss(
            scores.reshape(-1, V), b.targets.reshape(-1), reduction="sum"
        )  # padding: IGNORE_INDEX
        total += nll.item()
    assert total == pytest.approx(reference, rel=1e-12)


def test_to_device_keeps_contents():
    stream = BPTTStream(torch.arange(30), batch_size=2, bptt=4, start_id=None)
    moved = stream.to("cpu")
    assert len(moved) == len(stream)
    assert torch.equal(moved.batch(1).inputs, stream.batch(1).inputs)
    b = stream.batch(0).to("cpu")
    assert b.num_tokens == stream.batch(0).num_tokens


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        BPTTStream(torch.arange(5), batch_size=0, bptt=2, start_id=0)
    with pytest.raises(ValueError, match="bptt"):
        BPTTStream(torch.arange(5), batch_size=1, bptt=0, start_id=0)
    with pytest.raises(ValueError, match="shape"):
        BPTTStream(torch.zeros(2, 2, dtype=torch.long), batch_size=1, bptt=2, start_id=0)
    with pytest.raises(ElmanError, match="nothing to predict"):
        BPTTStream(torch.arange(1), batch_size=1, bptt=2, start_id=None)
