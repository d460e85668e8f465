"""A model built straight into its file, order by order (elman.models.ngram.estimation), is
the file NgramLM.build then write_arpa / write_binary give, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from elman.data.text import read_lines, stream_lines
from elman.models.ngram import NgramConfig, NgramLM, read_binary, write_arpa, write_binary
from elman.models.ngram import counts as counts_module
from elman.models.ngram.estimation import build_file

pytestmark = pytest.mark.filterwarnings("ignore::elman.models.ngram.counts.NgramWarning")


def corpus(lines: int = 1500, seed: int = 0) -> list[str]:
    """Zipf-like sentences over 200 words, a few with literal <s> and <unk>."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 201)
    weights /= weights.sum()
    out = [" ".join(f"w{w}" for w in rng.choice(200, size=rng.integers(0, 14), p=weights))
           for _ in range(lines)]  # fmt: skip
    return out + ["<s> w1 <unk> w2 </s>", ""]


@pytest.mark.parametrize("method", ["ml", "addk", "abs", "kn", "mkn"])
@pytest.mark.parametrize("order", [1, 3, 5])
def test_the_arpa_file_is_the_whole_models_byte_for_byte(method, order, tmp_path):
    lines = corpus(seed=order)
    config = NgramConfig(order=order, smoothing=method, k=0.5)
    write_arpa(NgramLM.build(lines, config), tmp_path / "whole.arpa")
    built = build_file(lines, config, tmp_path / "streamed.arpa")
    assert (tmp_path / "streamed.arpa").read_bytes() == (tmp_path / "whole.arpa").read_bytes()
    lm = NgramLM.build(lines, config)
    assert (built.vocab_size, built.counts, built.discounts) == (
        lm.vocab_size, lm.counts(), lm.discounts)  # fmt: skip


@pytest.mark.parametrize("method", ["addk", "mkn"])
def test_the_binary_file_is_the_whole_models_byte_for_byte(method, tmp_path):
    lines = corpus(seed=7)
    config = NgramConfig(order=4, smoothing=method)
    write_binary(NgramLM.build(lines, config), tmp_path / "whole.bin")
    build_file(lines, config, tmp_path / "streamed.bin", binary=True, temp_dir=tmp_path)
    assert (tmp_path / "streamed.bin").read_bytes() == (tmp_path / "whole.bin").read_bytes()
    assert read_binary(tmp_path / "streamed.bin").counts() == NgramLM.build(lines, config).counts()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.bin", "whole.bin"]


def test_exact_values_and_a_spilled_count_give_the_same_file(monkeypatch, tmp_path):
    lines = corpus(seed=3)
    config = NgramConfig(order=4, smoothing="mkn")
    write_arpa(NgramLM.build(lines, config), tmp_path / "whole.arpa", decimals=None)
    monkeypatch.setattr(counts_module, "chunk_tokens", lambda memory, held: 1024)
    build_file(lines, config, tmp_path / "streamed.arpa", decimals=None, memory=1,
               temp_dir=tmp_path)  # fmt: skip
    assert (tmp_path / "streamed.arpa").read_bytes() == (tmp_path / "whole.arpa").read_bytes()


def test_small_blocks_split_no_context(monkeypatch, tmp_path):
    """Contexts longer than a block stay whole: the sums per context are added in one go."""
    from elman.models.ngram import smoothing

    lines = corpus(seed=4)
    config = NgramConfig(order=3, smoothing="mkn")
    write_arpa(NgramLM.build(lines, config), tmp_path / "whole.arpa")
    monkeypatch.setattr(smoothing, "BLOCK", 7)
    build_file(lines, config, tmp_path / "streamed.arpa")
    assert (tmp_path / "streamed.arpa").read_bytes() == (tmp_path / "whole.arpa").read_bytes()
    blocks = smoothing._blocks(np.array([0, 0, 0, 0, 1, 2, 2, 5]), 2)
    assert blocks == [(0, 4), (4, 5), (5, 8)]  # cuts at 2, 4, 6 moved to a context's start


def test_a_pruned_model_is_built_whole_and_written_the_same(tmp_path):
    lines = corpus(seed=5)
    config = NgramConfig(order=3, smoothing="kn", prune=(0, 1))
    write_arpa(NgramLM.build(lines, config), tmp_path / "whole.arpa")
    built = build_file(lines, config, tmp_path / "streamed.arpa")
    assert (tmp_path / "streamed.arpa").read_bytes() == (tmp_path / "whole.arpa").read_bytes()
    assert built.counts == NgramLM.build(lines, config).counts()


@pytest.mark.parametrize(
    "text",
    [b"a b\nc\n", b"a b\nc", b"\xef\xbb\xbfa\n\n b \n", b"a\n \n", b"a\n  ", b"a\n\xc2\xa0",
     b"\n"],
)  # fmt: skip
def test_streamed_lines_are_read_lines(text, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(text)
    assert list(stream_lines(path)) == read_lines(path)


def test_an_empty_file_is_refused_when_streamed(tmp_path):
    from elman.errors import ElmanError

    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ElmanError, match="empty.txt: file is empty"):
        list(stream_lines(tmp_path / "empty.txt"))


@pytest.mark.parametrize("workers", [1, 3])
def test_blocks_made_by_threads_are_written_in_order(monkeypatch, tmp_path, workers):
    """Each section's lines are made by a few threads a block at a time and written in order:
    the file is the one a single thread writes, whatever the number of threads."""
    from elman.models.ngram import arpa, threads

    lines = corpus(seed=6)
    config = NgramConfig(order=4, smoothing="mkn")
    monkeypatch.setattr(threads, "WORKERS", 1)
    write_arpa(NgramLM.build(lines, config), tmp_path / "one.arpa")
    monkeypatch.setattr(arpa, "BLOCK", 17)  # many blocks a section, so that threads overlap
    monkeypatch.setattr(threads, "WORKERS", workers)
    build_file(lines, config, tmp_path / "streamed.arpa")
    write_arpa(NgramLM.build(lines, config), tmp_path / "whole.arpa")
    for name in ("streamed.arpa", "whole.arpa"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "one.arpa").read_bytes()


def test_a_failing_block_stops_the_writing_and_keeps_no_file(monkeypatch, tmp_path):
    from elman.models.ngram import arpa, threads

    made = []

    def fail_on_the_third(*args):
        made.append(1)
        if len(made) == 3:
            raise RuntimeError("made to fail")
        return real(*args)

    real = arpa.entry_lines
    monkeypatch.setattr(arpa, "entry_lines", fail_on_the_third)
    monkeypatch.setattr(arpa, "BLOCK", 17)
    monkeypatch.setattr(threads, "WORKERS", 2)
    with pytest.raises(RuntimeError, match="made to fail"):
        build_file(corpus(seed=6), NgramConfig(order=3), tmp_path / "model.arpa")
    assert list(tmp_path.iterdir()) == []
