"""ContextWindows against a naive Python construction; every token scored exactly once."""

from __future__ import annotations

import pytest
import torch

from elman.data.windows import ContextWindows
from elman.errors import ElmanError

PAD = 99


def naive_windows(ids: list[int], n_ctx: int, start_id: int | None) -> list[tuple]:
    """(context, target) pairs built one token at a time, as the docs describe them."""
    pad = start_id if start_id is not None else ids[0]
    first = 0 if start_id is not None else 1
    out = []
    for t in range(first, len(ids)):
        context = [ids[t - k] if t - k >= 0 else pad for k in range(n_ctx, 0, -1)]
        out.append((tuple(context), ids[t]))
    return out


def collect(windows: ContextWindows, start: int = 0) -> list[tuple]:
    pairs = []
    for batch in windows.iter_from(start):
        assert batch.num_tokens == batch.targets.numel() == batch.contexts.size(0)
        assert batch.contexts.shape[1] == windows.context_size
        pairs += [
            (tuple(c), t)
            for c, t in zip(batch.contexts.tolist(), batch.targets.tolist(), strict=True)
        ]
    return pairs


@pytest.mark.parametrize("n_ctx", [1, 2, 4, 7])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
@pytest.mark.parametrize("start_id", [PAD, None])
def test_in_order_matches_naive(n_ctx: int, batch_size: int, start_id: int | None) -> None:
    ids = torch.randint(0, 20, (23,), generator=torch.Generator().manual_seed(n_ctx)).tolist()
    w = ContextWindows(torch.tensor(ids), n_ctx, batch_size, start_id)
    expected = naive_windows(ids, n_ctx, start_id)
    assert collect(w) == expected
    assert w.total_tokens == len(expected) == len(ids) - (start_id is None)
    assert len(w) == -(-len(expected) // batch_size)


@pytest.mark.parametrize("start_id", [PAD, None])
def test_shuffled_epoch_scores_every_token_once(start_id: int | None) -> None:
    ids = torch.randint(0, 50, (101,), generator=torch.Generator().manual_seed(0))
    w = ContextWindows(ids, 3, 16, start_id, shuffle=True, seed=5)
    expected = naive_windows(ids.tolist(), 3, start_id)
    for epoch in (1, 2):
        w.set_epoch(epoch)
        got = collect(w)
        assert sorted(got) == sorted(expected)  # the same windows, each exactly once
        assert got != expected  # but not in stream order


def test_epoch_size_draws_a_fresh_subset_each_epoch() -> None:
    ids = torch.randint(0, 50, (101,), generator=torch.Generator().manual_seed(0))
    w = ContextWindows(ids, 3, 16, PAD, shuffle=True, seed=5, epoch_size=40)
    assert len(w) == 3  # ceil(40 / 16)
    everything = naive_windows(ids.tolist(), 3, PAD)
    seen = []
    for epoch in (1, 2):
        w.set_epoch(epoch)
        got = collect(w)
        assert len(got) == 40
        positions = w._order.tolist()
        assert len(set(positions)) == 40  # no window twice within an epoch
        assert got == [everything[p] for p in positions]
        seen.append(positions)
    assert seen[0] != seen[1]
    with pytest.raises(ValueError, match="epoch_size"):
        ContextWindows(ids, 3, 16, PAD, epoch_size=40)  # in-order data has no subsets


def test_order_depends_only_on_seed_and_epoch_and_resumes() -> None:
    ids = torch.arange(200) % 17
    a = ContextWindows(ids, 2, 8, PAD, shuffle=True, seed=3)
    b = ContextWindows(ids, 2, 8, PAD, shuffle=True, seed=3)
    a.set_epoch(4)
    b.set_epoch(4)
    full = collect(a)
    assert collect(b) == full
    assert collect(a, start=5) == full[5 * 8 :]  # iter_from(i) resumes exactly
    b.set_epoch(5)
    assert collect(b) != full


def test_windows_are_a_strided_view() -> None:
    ids = torch.arange(10)
    w = ContextWindows(ids, 3, 4, PAD)
    view = w.windows
    assert view.shape == (10, 4) and view.stride() == (1, 1)  # no copy of the stream per window
    assert view[:, -1].tolist() == ids.tolist()


def test_to_device_keeps_batches() -> None:
    ids = torch.arange(30) % 7
    w = ContextWindows(ids, 2, 4, PAD, shuffle=True, seed=1)
    moved = w.to("cpu")
    assert collect(moved) == collect(w)


def test_bad_arguments() -> None:
    with pytest.raises(ElmanError, match="nothing to predict"):
        ContextWindows(torch.tensor([4]), 2, 4, None)
    with pytest.raises(ValueError, match="context_size"):
        ContextWindows(torch.arange(5), 0, 4, PAD)
    with pytest.raises(ValueError, match="batch_size"):
        ContextWindows(torch.arange(5), 2, 0, PAD)
    with pytest.raises(ValueError, match="shape"):
        ContextWindows(torch.zeros(2, 2, dtype=torch.long), 2, 4, PAD)
