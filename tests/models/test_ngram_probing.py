"""The hash index of an order's keys: it finds exactly what binary search in the sorted keys
finds, through collisions, clusters that run past the table's S slots and empty orders,
and a model scores bit for bit alike with and without it."""

from __future__ import annotations

import numpy as np
import pytest

from elman.models.ngram import NgramConfig, NgramLM, probing


def searched(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each query key by binary search, -1 when absent: the reference."""
    if not len(keys):
        return np.full(len(query), -1)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[at] == query, at, -1)


def homes(keys: np.ndarray, size: int) -> np.ndarray:
    """home(key) computed one key at a time with Python integers: the docstring's formula."""
    return np.array([(((int(k) * 0x9E3779B97F4A7C15) % 2**64) >> 32) * size >> 32 for k in keys])


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 64, 1000, 50_000])
def test_lookup_finds_what_binary_search_finds(count):
    rng = np.random.default_rng(count)
    keys = np.unique(rng.integers(0, 10**12, count))
    table = probing.build(keys)
    query = np.concatenate([keys, rng.integers(0, 10**12, 500), keys[::-3]])
    np.testing.assert_array_equal(probing.lookup(table, keys, query), searched(keys, query))
    assert table[-1] == probing.EMPTY and probing.valid_size(len(keys), len(table))
    assert probing.slots(len(keys)) == max(1, int(np.ceil(1.5 * len(keys))))
    # every key sits at its home slot or after it, with no free slot in between
    slot = np.flatnonzero(table >= 0)
    assert np.array_equal(np.sort(table[slot]), np.arange(len(keys)))
    home = homes(keys[table[slot]], probing.slots(len(keys)))
    assert np.all(slot >= home)
    for s, h in zip(slot, home, strict=True):
        assert np.all(table[h:s] >= 0)


def test_a_cluster_past_the_last_slot_is_kept_and_found():
    size = probing.slots(40)
    candidates = np.arange(200_000, dtype=np.int64)
    last = candidates[homes(candidates, size) == size - 1]  # all at the last slot
    keys = np.sort(np.concatenate([last[:30], np.arange(10)]))
    table = probing.build(keys)
    assert len(table) > size  # the cluster runs on past S slots
    query = np.concatenate([keys, last[30:60]])
    np.testing.assert_array_equal(probing.lookup(table, keys, query), searched(keys, query))


def test_blocks_give_the_table_of_the_whole(monkeypatch):
    keys = np.unique(np.random.default_rng(1).integers(0, 10**9, 5000))
    whole = probing.build(keys)
    monkeypatch.setattr(probing, "BLOCK", 64)
    np.testing.assert_array_equal(probing.build(keys), whole)
    blocks = (keys[i : i + 100] for i in range(0, len(keys), 100))
    np.testing.assert_array_equal(probing.build_from(blocks, len(keys)), whole)
    with pytest.raises(ValueError, match="keys given"):
        probing.build_from([keys[:10]], len(keys))


@pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")  # a tiny corpus
def test_a_model_scores_alike_with_and_without_its_indexes():
    lines = ["the cat sat on the mat", "the dog sat", "a cat saw a dog", "the mat"] * 3
    lm, plain = (NgramLM.build(lines, NgramConfig(order=4)) for _ in range(2))
    test = ["the cat saw the dog", "a zebra sat on the mat", "mat the cat"]
    before = lm.log10probs(test)
    lm.build_index()
    assert all(index is not None for index in lm.hash_index[1:])
    np.testing.assert_array_equal(lm.log10probs(test), before)
    for context in (["<s>", "the"], ["the", "cat", "sat"], ["zebra"]):
        np.testing.assert_array_equal(lm.probs(context), plain.probs(context))
