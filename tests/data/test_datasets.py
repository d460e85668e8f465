import dataclasses
import json
import re
from pathlib import Path

import pytest

from elman.data import datasets
from elman.data.datasets import DATASETS, DatasetSpec, FileSpec, data_root, resolve, sha256_of
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


# --- the table in datasets.json ----------------------------------------------------------
def test_table_file_has_every_field():
    raw = json.loads(datasets.TABLE.read_text())
    assert (
        list(raw)
        == list(DATASETS)
        == [
            *("ptb", "ptb-char", "wikitext-2", "tinyshakespeare"),
            *("multi30k", "ud-en-lines", "ud-en-atis"),
        ]
    )
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name
        assert spec.task in ("lm", "translation", "tagger")  # the recipes' task names
        assert spec.tokenizer in ("whitespace", "characters")
        assert spec.description and spec.origin
        for f in spec.files.values():
            assert isinstance(f, FileSpec) and isinstance(f.size, int) and f.size > 0
            assert not Path(f.relpath).is_absolute() and ".." not in Path(f.relpath).parts
    assert DATASETS["tinyshakespeare"].fractions == (0.90, 0.05, 0.05)
    assert DATASETS["ptb"].fractions is None and DATASETS["multi30k"].splits == {}
    assert len(DATASETS["multi30k"].files) == 24
    assert DATASETS["ud-en-atis"].files["dev"] == FileSpec(
        "ud/UD_English-Atis/en_atis-ud-dev.conllu",
        365475,
        "ba9ed59a6cf862c695043b64053194277023270ac46ad7b5182b90baee7cfee0",
        "https://raw.githubusercontent.com/UniversalDependencies/UD_English-Atis/"
        "d1b43fe134cae17f65147e69accdf57c521d8af8/en_atis-ud-dev.conllu",
    )


def test_table_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATASETS["ptb"].task = "tagger"  # type: ignore[misc]


def table_with(tmp_path: Path, edit) -> Path:
    """A copy of the shipped table with ``edit(raw)`` applied, written under tmp_path."""
    raw = json.loads(datasets.TABLE.read_text())
    edit(raw)
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps(raw))
    return path


def test_table_roundtrips_through_load_table(tmp_path):
    assert datasets.load_table(table_with(tmp_path, lambda raw: None)) == DATASETS


@pytest.mark.parametrize(
    ("edit", "where", "what"),
    [
        (
            lambda r: r["ptb"].update(sizes=1),
            "dataset 'ptb'",
            "unknown key 'sizes'; the keys are task, level, tokenizer",
        ),
        (lambda r: r["wikitext-2"].pop("origin"), "dataset 'wikitext-2'", "missing key 'origin'"),
        (
            lambda r: r["ptb"]["files"]["valid"].pop("sha256"),
            "dataset 'ptb', file 'valid'",
            "missing key 'sha256'",
        ),
        (
            lambda r: r["ptb"]["files"]["test"].update(md5="x"),
            "dataset 'ptb', file 'test'",
            "unknown key 'md5'",
        ),
        (
            lambda r: r["ptb"]["files"]["test"].update(size="449945"),
            "dataset 'ptb', file 'test'",
            "size must be a JSON integer",
        ),
        (
            lambda r: r["ud-en-atis"].update(task="tagging"),
            "dataset 'ud-en-atis'",
            "task 'tagging' is not one of lm, translation, tagger",
        ),
        (
            lambda r: r["ptb"]["splits"].update(valid="dev"),
            "dataset 'ptb'",
            "splits maps 'valid' to 'dev'",
        ),
        (
            lambda r: r["tinyshakespeare"].update(fractions=[0.9, 0.1]),
            "dataset 'tinyshakespeare'",
            "fractions must be three numbers",
        ),
        (lambda r: r.update(toy=[]), "dataset 'toy'", "expected an object, got list"),
    ],
)
def test_malformed_table_entry_is_one_line_naming_file_and_entry(tmp_path, edit, where, what):
    path = table_with(tmp_path, edit)
    with pytest.raises(ElmanError) as err:
        datasets.load_table(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {where}: ") and what in msg and "\n" not in msg


def test_table_that_is_not_json_or_not_an_object(tmp_path):
    path = tmp_path / "datasets.json"
    path.write_text('{"ptb": {')
    with pytest.raises(ElmanError, match=f"^{re.escape(str(path))}: not valid JSON"):
        datasets.load_table(path)
    path.write_text("[]")
    with pytest.raises(ElmanError, match="expected an object mapping dataset names"):
        datasets.load_table(path)


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


# --- your own text: one file, a byte order mark, nothing but empty lines ---------------
def test_one_text_file_is_cut_90_5_5_by_lines(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("".join(f"line {i} words\n" for i in range(40)))
    ds = resolve(str(path))
    lines = {s: ds.lines(s) for s in ("train", "valid", "test")}
    assert [len(lines[s]) for s in ("train", "valid", "test")] == [36, 2, 2]
    assert lines["train"][0] == "line 0 words" and lines["test"][-1] == "line 39 words"
    assert ds.tokens("valid") == ["line", "36", "words", "<eos>", "line", "37", "words", "<eos>"]
    chars = resolve(str(path), level="char")
    assert len(chars.text("train")) == len(path.read_text()) * 90 // 100
    assert chars.tokenizer == "characters"


def test_one_text_file_with_its_own_valid_and_test_files(tmp_path):
    for name in ("train", "v", "t"):
        (tmp_path / f"{name}.txt").write_text(f"{name} text\n")
    ds = resolve(
        str(tmp_path / "train.txt"), valid=str(tmp_path / "v.txt"), test=str(tmp_path / "t.txt")
    )
    assert ds.lines("train") == ["train text"] and ds.lines("test") == ["t text"]
    with pytest.raises(ElmanError, match="give both data.valid and data.test"):
        resolve(str(tmp_path / "train.txt"), valid=str(tmp_path / "v.txt"))
    with pytest.raises(ElmanError, match="go with one training text file"):
        resolve(str(tmp_path), valid="v.txt", test="t.txt")


def test_paths_may_name_environment_variables(tmp_path, monkeypatch):
    for name in ("train", "valid", "test", "v", "t"):
        (tmp_path / f"{name}.txt").write_text(f"{name} text\n")
    monkeypatch.setenv("MY_CORPORA", str(tmp_path))
    ds = resolve("$MY_CORPORA/train.txt", valid="${MY_CORPORA}/v.txt", test="$MY_CORPORA/t.txt")
    assert ds.files == {
        s: tmp_path / f"{f}.txt" for s, f in (("train", "train"), ("valid", "v"), ("test", "t"))
    }
    assert resolve("$MY_CORPORA").lines("valid") == ["valid text"]  # a folder too


def test_a_file_too_short_to_cut_is_one_line(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("one line\n")
    with pytest.raises(ElmanError, match="too short to cut"):
        resolve(str(path)).tokens("valid")


def test_a_byte_order_mark_is_not_glued_to_the_first_word(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffthe cat\nsat\n".encode())
    assert resolve(str(path), valid=str(path), test=str(path)).tokens("train")[:2] == ["the", "cat"]


def test_a_corpus_of_empty_lines_is_refused(tmp_path):
    folder = tmp_path / "blank"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("\n\n  \n" if split == "train" else "a b\n")
    with pytest.raises(ElmanError, match="holds no words, only empty lines"):
        resolve(str(folder)).tokens("train")
