"""Counting in a memory budget: sorted runs spilled to disk and merged give exactly the
tables, rows and model of the in-memory count."""

from __future__ import annotations

import numpy as np
import pytest

from elman.cli import main
from elman.models.ngram import NgramConfig, NgramLM, read_arpa
from elman.models.ngram import counts as counts_module
from elman.models.ngram import spill as spill_module
from elman.models.ngram.counts import build_vocab, count_ngrams
from elman.models.ngram.spill import MIN_CHUNK, Run, merge, unique


def corpus(lines: int = 3000, seed: int = 0) -> list[str]:
    """Zipf-like sentences over 300 words: many repeated n-grams, many singletons."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 301)
    weights /= weights.sum()
    out = []
    for _ in range(lines):
        words = rng.choice(300, size=rng.integers(0, 16), p=weights)
        out.append(" ".join(f"w{w}" for w in words))
    return out


FIELDS = ("context", "word", "count", "suffix", "starts_bos")


@pytest.fixture
def spilled(monkeypatch) -> list:
    """The stems of the runs written to disk, in order."""
    stems = []
    real_init = spill_module.SpilledRun.__init__

    def counting_init(self, run, stem):
        stems.append(stem)
        real_init(self, run, stem)

    monkeypatch.setattr(spill_module.SpilledRun, "__init__", counting_init)
    return stems


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("chunk_multiple", [1, 4])
def test_spilled_count_equals_the_in_memory_one(
    chunk_multiple, workers, spilled, monkeypatch, tmp_path
):
    from elman.models.ngram import threads

    monkeypatch.setattr(threads, "WORKERS", workers)
    lines = corpus()
    vocab, enc = build_vocab(lines)
    whole = count_ngrams(enc, 5, len(vocab))
    chunk = chunk_multiple * MIN_CHUNK
    monkeypatch.setattr(counts_module, "chunk_tokens", lambda memory, held: chunk)
    parts = count_ngrams(enc, 5, len(vocab), memory=1, temp_dir=tmp_path)
    # the threads counting chunks at once share the budget: each counts a share of a chunk
    share = max(MIN_CHUNK, 2 * chunk // (2 * workers + 1) if workers > 1 else chunk)
    chunks = -(-len(enc.ids) // share)
    assert chunks > 5 and len(spilled) == 4 * chunks  # every chunk of orders 2..5 spilled
    assert list(tmp_path.iterdir()) == []  # the runs are gone afterwards
    for a, b in zip(whole, parts, strict=True):
        for field in FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and np.array_equal(x, y), field


def test_the_chunks_take_what_the_held_arrays_leave_of_the_budget():
    per, reserve = spill_module.BYTES_PER_TOKEN, spill_module.RESERVE
    assert spill_module.chunk_tokens(None, 10**9) is None
    assert spill_module.chunk_tokens(5000 * per + reserve + 10**6, 10**6) == 5000
    assert spill_module.chunk_tokens(10**6, 2 * 10**6) == MIN_CHUNK  # over: exceeded, not refused


def test_a_consumed_corpus_is_let_go_and_counts_the_same(tmp_path):
    lines = corpus(seed=2)
    vocab, enc = build_vocab(lines)
    whole = count_ngrams(enc, 4, len(vocab))
    _, capped = build_vocab(lines, cap=4)
    assert capped.pos.dtype == np.uint8 and capped.pos.max() == 4
    parts = count_ngrams(capped, 4, len(vocab), memory=1, temp_dir=tmp_path, consume=True)
    assert len(capped.ids) == len(capped.pos) == 0
    for a, b in zip(whole, parts, strict=True):
        for field in FIELDS:
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_build_in_a_budget_gives_the_same_model():
    lines = corpus(seed=1)
    config = NgramConfig(order=4, smoothing="mkn", prune=(0, 0, 1))
    a = NgramLM.build(lines, config)
    b = NgramLM.build(lines, config, memory=MIN_CHUNK * spill_module.BYTES_PER_TOKEN)
    assert a.vocab == b.vocab
    for x, y in zip(a.keys + a.logp + a.logbo, b.keys + b.logp + b.logbo, strict=True):
        assert np.array_equal(x, y)
    assert a.discounts == b.discounts


@pytest.mark.parametrize("block", [1, 2, 5, 1000])
def test_merge_sums_equal_keys_across_runs(block):
    rng = np.random.default_rng(block)
    runs, every_key = [], []
    for size in (0, 7, 40, 13):
        keys = rng.integers(0, 60, size)
        every_key.append(keys)
        uniq, count = np.unique(keys, return_counts=True)
        # the suffix row and <s> flag are functions of the key, as in a real count
        runs.append(Run(uniq, count.astype(np.int32), (uniq // 3).astype(np.int32), uniq % 2 == 0))
    rows: list = []
    merged = merge(runs, block, rows=rows)
    for run, found in zip(runs, rows, strict=True):  # each run's keys' rows in the result
        assert found.dtype == np.int32
        assert np.array_equal(found, np.searchsorted(merged.keys, run.keys))
    uniq, count = np.unique(np.concatenate(every_key), return_counts=True)
    assert np.array_equal(merged.keys, uniq) and np.array_equal(merged.count, count)
    assert np.array_equal(merged.suffix, uniq // 3)
    assert np.array_equal(merged.starts_bos, uniq % 2 == 0)
    assert merged.count.dtype == np.int32


def test_cli_memory_and_temp_dir(tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(corpus(lines=4000, seed=2)) + "\n")
    common = ["ngram", "build", "--order", "3", "--data", str(text)]
    assert main([*common, "--out", str(tmp_path / "a.arpa")]) == 0
    runs = tmp_path / "runs"
    runs.mkdir()
    argv = [*common, "--memory", "1M", "--temp-dir", str(runs), "--out", str(tmp_path / "b.arpa")]
    assert main(argv) == 0  # 1M sorts 16,384 tokens at a time: this corpus spills
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    assert list(runs.iterdir()) == []
    assert read_arpa(tmp_path / "b.arpa").counts()[2] > 0
    capsys.readouterr()
    for bad in ("0.5K", "lots", "150%", "nan"):
        rc = main([*common, "--memory", bad, "--out", str(tmp_path / "c.arpa")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "--memory" in err and "500M, 2G or 50%" in err


def test_a_temp_dir_that_cannot_be_written_is_one_line(tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(corpus(lines=4000, seed=3)) + "\n")
    missing = tmp_path / "no" / "such"
    argv = ["ngram", "build", "--order", "2", "--data", str(text), "--memory", "1M"]
    rc = main([*argv, "--temp-dir", str(missing), "--out", str(tmp_path / "m.arpa")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{missing}: cannot write the sorted runs of the 2-gram counts" in err
    assert not (tmp_path / "m.arpa").exists()


@pytest.mark.parametrize("size", [0, 1, 2, 1000, 70_000])
def test_unique_equals_numpys_bit_for_bit(size):
    rng = np.random.default_rng(size)
    keys = np.minimum(rng.zipf(1.5, size), 10**6) * 7919 + rng.integers(0, 3, size)
    want = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    got = unique(keys)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_unique_of_keys_too_large_to_pack_is_numpys():
    keys = np.array([2**62, 5, 2**62, 0, 5], dtype=np.int64)  # leaves no bit for the index
    for a, b in zip(unique(keys), np.unique(keys, True, True, True), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("bits", [40, 36, 33])
def test_unique_of_keys_wider_than_the_packing_sorts_by_bucket(bits):
    """Keys of 30 bits beside 17 bits of index leave 13 (bits = 40) to 16 (33) high bits to
    the radix pass by bucket: still np.unique's arrays bit for bit."""
    rng = np.random.default_rng(bits)
    keys = rng.integers(0, 2**30, 70_000) // rng.integers(1, 1000, 70_000)
    keys[::7] = rng.choice(keys, len(keys[::7]))  # more repeats, across buckets
    want = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    got = unique(keys, bits=bits)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("runs", [0, 1, 3, 8])
def test_unique_of_runs_is_np_unique(runs):
    from elman.models.ngram.spill import unique_of_runs

    rng = np.random.default_rng(runs)
    parts = [np.unique(rng.integers(0, 500, rng.integers(0, 300))) for _ in range(runs)]
    for keys in (np.concatenate(parts or [np.zeros(0, np.int64)]), rng.integers(0, 50, 999)):
        expected = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        for got, want in zip(unique_of_runs(keys), expected, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_a_budget_below_what_is_held_makes_at_most_max_runs(spilled, monkeypatch, tmp_path):
    lines = corpus(seed=3)
    vocab, enc = build_vocab(lines)
    whole = count_ngrams(enc, 3, len(vocab))
    monkeypatch.setattr(spill_module, "MAX_RUNS", 5)
    parts = count_ngrams(enc, 3, len(vocab), memory=1, temp_dir=tmp_path)  # MIN_CHUNK tokens
    assert len(enc.ids) > 10 * MIN_CHUNK and len(spilled) == 2 * 5  # orders 2 and 3
    for a, b in zip(whole, parts, strict=True):
        assert np.array_equal(a.count, b.count) and np.array_equal(a.suffix, b.suffix)


@pytest.mark.parametrize("workers", [2, 3])
def test_an_order_held_whole_is_counted_a_chunk_a_thread_the_same(workers, monkeypatch):
    """Without a budget, a large corpus is still cut into a chunk a thread, kept in memory and
    merged: the tables are those of one sort over all the tokens."""
    from elman.models.ngram import threads

    lines = corpus()
    vocab, enc = build_vocab(lines)
    monkeypatch.setattr(threads, "WORKERS", 1)
    whole = count_ngrams(enc, 5, len(vocab))
    monkeypatch.setattr(threads, "WORKERS", workers)
    monkeypatch.setattr(spill_module, "PARALLEL_TOKENS", 0)
    merged: list[int] = []
    real_merge = spill_module.merge
    monkeypatch.setattr(spill_module, "merge", lambda runs, **kw: merged.append(len(runs))
                        or real_merge(runs, **kw))  # fmt: skip
    parts = count_ngrams(enc, 5, len(vocab))
    assert merged == [workers] * 4  # orders 2..5, a run a thread, none spilled
    for a, b in zip(whole, parts, strict=True):
        for field in FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and np.array_equal(x, y), field
