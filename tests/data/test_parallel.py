"""Parallel corpora: aligned lines, directions, gzip, split names, unequal files, Multi30k."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from elman.data.parallel import MULTI30K_SPLITS, read_lines_exact, resolve_parallel
from elman.errors import ElmanError

from .conftest import need

PAIRS = {
    "train": ("ein Hund\n\nzwei Katzen\n", "a dog\n\ntwo cats\n"),
    "valid": ("Hallo\n", "hello\n"),
    "test": ("ja\nnein", "yes\nno"),  # no newline after the last line
}


def write_folder(folder: Path, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, (de, en) in PAIRS.items():
        for lang, text in (("de", de), ("en", en)):
            if gz and split == "train":
                (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(text.encode()))
            else:
                (folder / f"{split}.{lang}").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_folder_pairs_keep_empty_lines_and_unterminated_last_line(tmp_path, gz):
    corpus = resolve_parallel(str(write_folder(tmp_path / "c", gz=gz)))
    assert (corpus.src_lang, corpus.tgt_lang, corpus.direction) == ("de", "en", "de-en")
    assert corpus.pairs("train") == (["ein Hund", "", "zwei Katzen"], ["a dog", "", "two cats"])
    assert corpus.pairs("test") == (["ja", "nein"], ["yes", "no"])
    assert corpus.pairs("val") == corpus.pairs("valid") == (["Hallo"], ["hello"])
    assert corpus.split_name("val") == "valid"


def test_direction_en_de_swaps_the_sides(tmp_path):
    corpus = resolve_parallel(str(write_folder(tmp_path / "c")), "en-de")
    assert corpus.source("valid") == ["hello"] and corpus.target("valid") == ["Hallo"]


def test_unequal_line_counts_name_both_files_and_counts(tmp_path):
    folder = write_folder(tmp_path / "c")
    (folder / "valid.en").write_text("hello\nworld\n")
    corpus = resolve_parallel(str(folder))
    with pytest.raises(ElmanError) as err:
        corpus.pairs("valid")
    msg = str(err.value)
    assert str(folder / "valid.de") in msg and str(folder / "valid.en") in msg
    assert "has 1 lines" in msg and "has 2" in msg and "\n" not in msg


def test_missing_files_bad_direction_unknown_split_and_names(tmp_path):
    folder = write_folder(tmp_path / "c")
    (folder / "test.en").unlink()
    with pytest.raises(ElmanError, match="missing test.en"):
        resolve_parallel(str(folder))
    with pytest.raises(ElmanError, match="missing train.fr"):
        resolve_parallel(str(folder), "de-fr")
    for bad in ("de", "de-de", "de_en-", "de-en-fr"):
        with pytest.raises(ElmanError, match="SRC-TGT"):
            resolve_parallel(str(folder), bad)
    corpus = resolve_parallel(str(write_folder(tmp_path / "d")))
    with pytest.raises(ElmanError, match="unknown split 'dev'.*train, valid, test, val"):
        corpus.pairs("dev")
    with pytest.raises(ElmanError, match="not a parallel one"):
        resolve_parallel("ptb")
    with pytest.raises(ElmanError, match="unknown parallel dataset 'nope'.*multi30k"):
        resolve_parallel("nope")


def test_corrupt_gzip_is_one_line(tmp_path):
    path = tmp_path / "x.de.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ElmanError, match="not a valid gzip file"):
        read_lines_exact(path)


@pytest.mark.data
def test_multi30k_raw_splits_and_directions(real_root):
    need(real_root, "multi30k/raw/train.de.gz")
    corpus = resolve_parallel("multi30k", root=real_root)
    sizes = {s: len(corpus.source(s)) for s in MULTI30K_SPLITS}
    assert sizes == {
        "train": 29000,
        "val": 1014,
        "test_2016_flickr": 1000,
        "test_2017_flickr": 1000,
        "test_2017_mscoco": 461,
        "test_2018_flickr": 1071,
    }
    assert corpus.pairs("valid") == corpus.pairs("val")
    assert corpus.pairs("test") == corpus.pairs("test_2016_flickr")
    de, en = corpus.pairs("train")
    assert de[0].startswith("Zwei junge weiße Männer") and en[0].startswith("Two young, White")
    assert (
        resolve_parallel("multi30k", "en-de", root=real_root).source("val")[0]
        == corpus.target("val")[0]
    )
    with pytest.raises(ElmanError, match="de-en or en-de"):
        resolve_parallel("multi30k", "de-fr", root=real_root)
