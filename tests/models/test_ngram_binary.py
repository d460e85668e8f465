"""Binary n-gram models: the same model as its ARPA file, mapped rather than copied, and a
one-line refusal for every kind of damaged or foreign file."""

from __future__ import annotations

import json
import mmap
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from elman.cli import main
from elman.errors import ElmanError
from elman.models.ngram import (
    SMOOTHINGS,
    NgramConfig,
    NgramLM,
    probing,
    read_arpa,
    read_binary,
    read_model,
    write_arpa,
    write_binary,
)
from elman.models.ngram.binary import MAGIC, PREFIX, VERSION, Payload, _arrays, _pieces
from elman.models.ngram.counts import NgramWarning

LINES = ["a b c a", "b c", "c a b b", "a", "b a c c a b"]
TEST = ["a b c", "c c zebra", "b a"]
TRAIN = ["the cat sat on the mat", "the dog sat", "a cat saw a dog", "the mat"] * 3


def build(order: int = 3, smoothing: str = "mkn") -> NgramLM:
    with warnings.catch_warnings():  # high orders: empty top sections
        warnings.simplefilter("ignore", NgramWarning)
        return NgramLM.build(LINES, NgramConfig(order=order, smoothing=smoothing))


def tables(lm: NgramLM) -> list[np.ndarray]:
    return lm.keys + lm.logp + lm.logbo


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.bin"
    write_binary(build(), path)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (folder / "valid.txt").write_text("the cat\n")
    (folder / "test.txt").write_text("the cat sat on a dog\na zebra sat\n")
    return folder


# --- the same model ----------------------------------------------------------------
@pytest.mark.parametrize(
    "method, order", [(m, 3) for m in SMOOTHINGS] + [("mkn", 1), ("mkn", 2), ("kn", 8)]
)
def test_arpa_to_binary_gives_the_same_model_bit_for_bit(tmp_path, method, order):
    arpa = tmp_path / "m.arpa"
    write_arpa(build(order, method), arpa)
    lm = read_arpa(arpa)
    size = write_binary(lm, tmp_path / "m.bin")
    back = read_binary(tmp_path / "m.bin")
    assert size == (tmp_path / "m.bin").stat().st_size
    assert back.vocab == lm.vocab and back.counts() == lm.counts() and back.order == order
    for ours, theirs in zip(tables(lm), tables(back), strict=True):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    assert np.array_equal(back.log10probs(TEST), lm.log10probs(TEST))
    assert back.perplexity(TEST) == lm.perplexity(TEST)
    for history in ([lm.bos_id], [lm.bos_id, lm.index["a"]], [lm.index["b"]] * 4):
        assert np.array_equal(back.next_probs(history), lm.next_probs(history))
    assert back.sample(5, seed=3) == lm.sample(5, seed=3)


def test_discounts_and_a_rewrite_are_kept(tmp_path, model):
    lm = build()
    back = read_binary(model)
    assert back.discounts == lm.discounts and len(back.discounts) == 3
    write_binary(back, tmp_path / "again.bin")  # from the mapped arrays
    assert (tmp_path / "again.bin").read_bytes() == model.read_bytes()


def test_layout_is_as_documented(model):
    data = model.read_bytes()
    magic, version, length = PREFIX.unpack_from(data)
    assert (magic, version) == (MAGIC, VERSION) == (b"ELMANLM\0", 2)
    header = json.loads(data[16 : 16 + length])
    start = -(-(16 + length) // 64) * 64
    assert len(data) == start + header["payload_bytes"]
    assert header["counts"] == build().counts() and header["order"] == 3
    assert all(offset % 64 == 0 for offset, _ in header["arrays"].values())
    offset, size = header["arrays"]["logp2"]
    logp2 = np.frombuffer(data, "<f8", size // 8, start + offset)
    assert np.array_equal(logp2, build().logp[1])
    offset, size = header["arrays"]["vocab"]
    assert data[start + offset : start + offset + size].decode().split("\n") == build().vocab
    for n in (2, 3):  # each order's hash index, as probing builds it from the keys
        offset, size = header["arrays"][f"index{n}"]
        index = np.frombuffer(data, "<i4", size // 4, start + offset)
        assert np.array_equal(index, probing.build(build().keys[n - 1]))


def write_version_1(lm: NgramLM, path: Path) -> None:
    """``lm`` in format version 1: no hash indexes, and no "index" among the dtypes."""
    arrays = [(name, data) for name, data in _arrays(lm) if not name.startswith("index")]
    payload = Payload()
    for name, data in arrays:
        payload.add(name, [data])
    head = payload.header(lm.order, lm.vocab_size, lm.counts(), lm.discounts)
    header = json.loads(head[PREFIX.size :].rstrip(b"\0"))
    header["dtypes"].pop("index")
    text = json.dumps(header).encode()
    start = -(-(PREFIX.size + len(text)) // 64) * 64
    prefix = PREFIX.pack(MAGIC, 1, len(text)) + text
    path.write_bytes(prefix + bytes(start - len(prefix)) + b"".join(_pieces(arrays)))


def test_a_version_1_file_is_read_and_searched_without_indexes(tmp_path, model):
    old = tmp_path / "v1.bin"
    write_version_1(build(), old)
    lm = read_binary(old)
    assert lm.hash_index == [None, None, None]
    new = read_binary(model)
    assert all(index is not None for index in new.hash_index[1:])
    np.testing.assert_array_equal(lm.log10probs(TEST), new.log10probs(TEST))
    np.testing.assert_array_equal(lm.log10probs(TEST), build().log10probs(TEST))


def test_an_index_of_the_wrong_size_is_refused(model):
    data = model.read_bytes()
    _, _, length = PREFIX.unpack_from(data)
    header = json.loads(data[16 : 16 + length])
    offset, size = header["arrays"]["index3"]
    old = f'"index3": [{offset}, {size}]'.encode()
    assert data.count(old) == 1
    new = f'"index3": [{offset}, {size - 4}]'.encode().ljust(len(old))  # same length
    model.write_bytes(data.replace(old, new))
    with pytest.raises(ElmanError, match="index3 has .* bytes, not an index of its count"):
        read_binary(model)


def test_arrays_are_mapped_from_the_file_not_copied(model):
    lm = read_binary(model)
    indexes = [x for x in lm.hash_index if x is not None]
    assert len(indexes) == 2
    for a in tables(lm)[1:] + indexes:  # keys[0] is 0 .. V-1, made on loading
        assert not a.flags.owndata and not a.flags.writeable
        base = a
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def test_read_model_reads_either_format(tmp_path, model):
    arpa = tmp_path / "m.arpa"
    write_arpa(build(), arpa, decimals=None)
    assert isinstance(read_model(model).logp[1].base, memoryview)
    assert np.array_equal(read_model(arpa).log10probs(TEST), read_model(model).log10probs(TEST))


# --- the command line --------------------------------------------------------------
def test_binary_command_then_eval_and_sample_match_the_arpa_model(tmp_path, corpus, capsys):
    arpa, binary = tmp_path / "m.arpa", tmp_path / "m.bin"
    rc, _, _ = run(
        capsys, "ngram", "build", "--order", "3", "--data", str(corpus), "--out", str(arpa)
    )
    assert rc == 0
    rc, out, err = run(capsys, "ngram", "binary", str(arpa), str(binary))
    assert rc == 0 and not err and binary.is_file()
    assert f"read   {arpa} (" in out and f"wrote  {binary} (" in out and " MB) in " in out
    results = []
    for path in (arpa, binary):
        rc, out, _ = run(capsys, "ngram", "eval", str(path), "--data", str(corpus), "--json")
        assert rc == 0
        results.append(json.loads(out))
    assert results[1].pop("model") == str(binary) and results[0].pop("model") == str(arpa)
    assert results[0] == results[1]
    samples = [run(capsys, "ngram", "sample", str(p), "--seed", "4")[1] for p in (arpa, binary)]
    assert samples[0] == samples[1] and len(samples[0].splitlines()) == 5


def test_binary_command_refuses_a_missing_model_in_one_line(tmp_path, capsys):
    rc, _, err = run(capsys, "ngram", "binary", str(tmp_path / "none.arpa"), str(tmp_path / "o"))
    assert rc == 2 and err.count("\n") == 1 and "no such ARPA file" in err


# --- refusals ------------------------------------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def cut_in_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def next_version(path: Path) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, VERSION + 1)
    path.write_bytes(bytes(data))


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of the top order's log10 probabilities
    path.write_bytes(bytes(data))


def garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[16:20] = b"\xff{[x"
    path.write_bytes(bytes(data))


def wrong_order(path: Path) -> None:
    data = path.read_bytes()
    assert data.count(b'"order": 3') == 1
    path.write_bytes(data.replace(b'"order": 3', b'"order": 4'))  # valid JSON, same length


def append_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0" * 64)


DAMAGE = [
    (truncate, "truncated ("),
    (cut_in_header, "truncated ("),
    (next_version, f"written by format version {VERSION + 1}; this elman reads 1 and {VERSION}"),
    (flip_last_byte, "checksum mismatch"),
    (garble_header, "malformed header (not UTF-8 JSON)"),
    (wrong_order, "malformed header (counts must be 4 n-gram counts"),
    (append_bytes, "64 bytes more than its header says"),
]


@pytest.mark.parametrize("damage, message", DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_a_damaged_file_is_refused_in_one_line(model, corpus, capsys, damage, message):
    damage(model)
    rc, out, err = run(capsys, "ngram", "eval", str(model), "--data", str(corpus))
    assert rc == 2 and not out and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"elman: error: {model}: ") and message in err
    assert "elman ngram binary" in err  # the fix


def test_verify_false_skips_the_checksum(model):
    flip_last_byte(model)
    with pytest.raises(ElmanError, match="checksum mismatch"):
        read_binary(model)
    assert read_binary(model, verify=False).logp[2][-1] != build().logp[2][-1]


def test_an_arpa_file_or_another_file_is_named_as_such(tmp_path):
    arpa = tmp_path / "m.arpa"
    write_arpa(build(), arpa)
    with pytest.raises(ElmanError, match="an ARPA text file, not an elman binary") as err:
        read_binary(arpa)
    assert f"elman ngram binary {arpa} OUT" in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "weights.pt"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ElmanError, match="not an elman binary n-gram model") as err:
        read_binary(other)
    assert str(err.value).startswith(f"{other}: ") and "\n" not in str(err.value)
    with pytest.raises(ElmanError, match="no such file"):
        read_binary(tmp_path / "none.bin")


def test_a_wrong_magic_is_refused_by_eval_in_one_line(model, corpus, capsys):
    data = bytearray(model.read_bytes())
    data[:8] = b"ELMANLX\0"
    model.write_bytes(bytes(data))
    with pytest.raises(ElmanError, match="not an elman binary n-gram model"):
        read_binary(model)
    rc, _, err = run(capsys, "ngram", "eval", str(model), "--data", str(corpus))
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{model}: neither an ARPA file nor an elman binary n-gram model" in err


def test_build_binary_writes_the_model_the_binary_command_writes(tmp_path, corpus, capsys):
    arpa, converted, direct = tmp_path / "m.arpa", tmp_path / "c.bin", tmp_path / "d.bin"
    build = ["ngram", "build", "--order", "3", "--data", str(corpus)]
    assert run(capsys, *build, "--out", str(arpa), "--decimals", "exact")[0] == 0
    assert run(capsys, "ngram", "binary", str(arpa), str(converted))[0] == 0
    assert run(capsys, *build, "--binary", "--out", str(direct))[0] == 0
    a, b = read_binary(converted), read_binary(direct)
    assert a.vocab == b.vocab and a.counts() == b.counts()
    for x, y in zip(a.hash_index[1:], b.hash_index[1:], strict=True):
        np.testing.assert_array_equal(x, y)  # the streamed writer builds the same indexes
    for x, y in zip(a.logp + a.logbo, b.logp + b.logbo, strict=True):
        np.testing.assert_array_equal(x, y)  # ARPA's shortest repr round-trips every float
    assert run(capsys, *build, "--out", str(arpa))[0] == 0  # 8 decimals, the default
    a = read_arpa(arpa)
    for x, y in zip(a.logp + a.logbo, b.logp + b.logbo, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=5.01e-9)
    rc, _, err = run(capsys, *build, "--out", str(arpa), "--decimals", "0")
    assert rc == 2 and "--decimals" in err and "1 … 17 or 'exact'" in err
