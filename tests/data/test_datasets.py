import re
from pathlib import Path

import pytest

from elman.data import datasets
from elman.data.datasets import DATASETS, data_root, resolve, sha256_of
from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError

from .conftest import need


def write_dir(folder: Path, train="a b\nc\n", valid="a\n", test=" \nb\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in [("train", train), ("valid", valid), ("test", test)]:
        (folder / f"{split}.txt").write_text(text)
    return folder


def test_data_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ELMAN_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("ELMAN_DATA")
    assert data_root() == Path.home() / ".cache" / "elman"


def test_custom_directory_word_level(tmp_path):
    ds = resolve(str(write_dir(tmp_path / "corpus")))
    assert ds.level == "word" and ds.specials == ("<unk>", "<eos>") and ds.start_token == "<eos>"
    assert ds.tokens("train") == ["a", "b", "<eos>", "c", "<eos>"]
    assert ds.tokens("test") == ["<eos>", "b", "<eos>"]  # a blank line is just <eos>
    assert ds.lines("train") == ["a b", "c"]
    assert ds.path("valid") == tmp_path / "corpus" / "valid.txt"


def test_custom_directory_char_level(tmp_path):
    ds = resolve(str(write_dir(tmp_path / "c")), level="char")
    assert ds.level == "char" and ds.specials == ("<unk>",) and ds.start_token is None
    assert ds.tokens("train") == list("a b\nc\n")


def test_custom_directory_missing_split(tmp_path):
    folder = write_dir(tmp_path / "c")
    (folder / "test.txt").unlink()
    with pytest.raises(ElmanError, match="missing test.txt"):
        resolve(str(folder))


def test_unknown_name_lists_the_names_and_directories():
    with pytest.raises(ElmanError) as err:
        resolve("ptb-words")
    msg = str(err.value)
    for name in ("ptb", "ptb-char", "wikitext-2", "tinyshakespeare"):
        assert name in msg
    assert "train.txt, valid.txt and test.txt" in msg


def test_unknown_split_and_level(tmp_path):
    ds = resolve(str(write_dir(tmp_path / "c")))
    with pytest.raises(ElmanError, match="train, valid, test"):
        ds.tokens("dev")
    with pytest.raises(ElmanError, match="word, char"):
        resolve(str(tmp_path / "c"), level="bytes")


def test_named_dataset_is_checked_and_tokenized(fake_table):
    root, _ = fake_table
    ds = resolve("toy")
    assert ds.name == "toy" and ds.path("train") == root / "toy" / "train.txt"
    assert ds.tokens("test") == ["<eos>", "c", "d", "<eos>"]
    v = Vocabulary.build(ds.tokens("train"), specials=ds.specials)
    assert v.itos == ["<unk>", "<eos>", "b", "c", "a"]


def test_single_file_split_in_order(fake_table):
    ds = resolve("toychar")  # 100 characters: 90 / 5 / 5
    parts = [ds.tokens(s) for s in ("train", "valid", "test")]
    assert [len(p) for p in parts] == [90, 5, 5]
    assert "".join(sum(parts, [])) == "0123456789" * 10
    assert ds.path("train") == ds.path("test")


def test_missing_file_one_line_with_path_and_download(fake_table):
    root, table = fake_table
    (root / "toy" / "valid.txt").unlink()
    with pytest.raises(ElmanError) as err:
        resolve("toy")
    msg = str(err.value)
    assert str(root / "toy" / "valid.txt") in msg
    assert "elman data download toy" in msg and table["toy"].files["valid"].url in msg
    assert "\n" not in msg


def test_sha_mismatch_one_line(fake_table):
    root, table = fake_table
    f = root / "toy" / "train.txt"
    f.write_bytes(b"a b d\nb c\n")  # same size, different bytes
    with pytest.raises(ElmanError) as err:
        resolve("toy")
    msg = str(err.value)
    assert msg.startswith(str(f))
    assert f"expected sha256 {table['toy'].files['train'].sha256} of toy/train.txt" in msg
    assert "elman data download toy" in msg and "\n" not in msg


def test_non_lm_dataset_and_level_override_are_rejected(fake_table):
    with pytest.raises(ElmanError, match="translation corpus"):
        resolve("toypar")
    with pytest.raises(ElmanError, match="custom directory"):
        resolve("toy", level="char")


def test_sha256_hashed_once_per_process(tmp_path, monkeypatch):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello")
    first = sha256_of(f)
    monkeypatch.setattr(datasets.hashlib, "sha256", None)  # a second hash would fail
    assert sha256_of(f) == first


def test_table_is_consistent():
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.level in ("word", "char")
        for f in spec.files.values():
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.url.startswith("https://")
        if spec.task == "lm":
            assert set(spec.splits) == {"train", "valid", "test"}
            assert set(spec.splits.values()) <= set(spec.files)


# --- the real corpora ------------------------------------------------------------------
README_COUNTS = {
    "ptb": ((929_589, 73_760, 82_430), 10_000),
    "wikitext-2": ((2_088_628, 217_646, 245_569), 33_278),
}


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_readme_token_counts_and_vocabulary(real_root, name):
    need(real_root, *(f.relpath for f in DATASETS[name].files.values()))
    ds = resolve(name, root=real_root)
    counts, vocab_size = README_COUNTS[name]
    train = ds.tokens("train")
    assert (len(train), len(ds.tokens("valid")), len(ds.tokens("test"))) == counts
    assert len(Vocabulary.build(train, specials=ds.specials)) == vocab_size


@pytest.mark.data
def test_ptb_char_matches_ptb_lines(real_root):
    need(real_root, "ptb/ptb.char.valid.txt", "ptb/ptb.valid.txt")
    words = resolve("ptb", root=real_root).lines("valid")
    chars = resolve("ptb-char", root=real_root).tokens("valid")
    # Each line's words, character by character with `_` between words, then <eos>.
    expect = [sym for line in words for sym in [*"_".join(line.split()), "<eos>"]]
    assert chars == expect


@pytest.mark.data
def test_tinyshakespeare_symbols_and_split(real_root):
    need(real_root, "tinyshakespeare/input.txt")
    ds = resolve("tinyshakespeare", root=real_root)
    parts = [ds.tokens(s) for s in ("train", "valid", "test")]
    assert sum(len(p) for p in parts) == 1_115_394
    assert len(set(sum(parts, []))) == 65
    assert len(parts[0]) == 1_115_394 * 90 // 100


@pytest.mark.data
def test_recorded_sha256_match_sources_md(real_root):
    sources = real_root / "SOURCES.md"
    if not sources.is_file():
        pytest.skip("SOURCES.md is absent")
    recorded = dict(re.findall(r"\| `([^`]+)` \| [\d,]+ \| `([0-9a-f]{64})`", sources.read_text()))
    for spec in DATASETS.values():
        for f in spec.files.values():
            assert recorded[f.relpath] == f.sha256, f.relpath
