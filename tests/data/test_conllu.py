"""CoNLL-U reading and writing: UD's node kinds, lossless round trips, one-line errors."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from elman.data.conllu import FIELDS, parse_conllu, read_conllu, write_conllu
from elman.errors import ElmanError
from train.tagtoy import node, sentence_block

SAMPLE = (
    "# newdoc id = d1\n"
    "# sent_id = 1\n"
    "# a comment without a value\n"
    + "\n".join(
        [
            node("1", "I", "PRON", "PERS", misc="SpaceAfter=No"),
            node("2-3", "can't", "_"),
            node("2", "ca", "AUX", "MD"),
            node("3", "n't", "PART", "RB"),
            node("3.1", "go", "VERB"),
            node("4", "go", "VERB", "VB"),
            "5\tnow  then\tnow\tADV\tRB\tDegree=Pos|X=Y\t4\tadvmod\t4:advmod\tSpaceAfter=No",
        ]
    )
    + "\n\n# sent_id = 2\n"
    + node("1", "Yes", "INTJ", "UH")
    + "\n\n"
)


def write(tmp_path: Path, text: str, name: str = "x.conllu") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_words_skip_multiword_tokens_and_empty_nodes():
    first, second = parse_conllu(SAMPLE)
    assert first.forms() == ["I", "ca", "n't", "go", "now  then"]
    assert first.column("upos") == ["PRON", "AUX", "PART", "VERB", "ADV"]
    assert len(first.tokens) == 7  # every node is kept, only the words are tagged
    assert second.forms() == ["Yes"]


def test_round_trip_is_byte_identical():
    out = io.StringIO()
    write_conllu(parse_conllu(SAMPLE), out)
    assert out.getvalue() == SAMPLE


@pytest.mark.parametrize("column", ["upos", "xpos"])
def test_writing_a_column_keeps_every_other_column(column):
    sentences = parse_conllu(SAMPLE)
    for s in sentences:
        s.set_column(column, [f"T{i}" for i in range(len(s.words()))])
    out = io.StringIO()
    write_conllu(sentences, out)
    before, after = SAMPLE.split("\n"), out.getvalue().split("\n")
    assert len(before) == len(after)
    k = FIELDS.index(column)
    for old, new in zip(before, after, strict=True):
        if old.startswith("#") or not old:
            assert new == old  # comments and sentence breaks verbatim
            continue
        a, b = old.split("\t"), new.split("\t")
        assert a[:k] + a[k + 1 :] == b[:k] + b[k + 1 :]
        if "-" in a[0] or "." in a[0]:
            assert b[k] == a[k]  # multi-word tokens and empty nodes are not tagged
        else:
            assert b[k].startswith("T")


def test_set_column_needs_one_value_per_word():
    sentence = parse_conllu(SAMPLE)[0]
    with pytest.raises(ValueError, match="5 words"):
        sentence.set_column("upos", ["X"])
    with pytest.raises(ValueError, match="accepted"):
        sentence.set_column("postag", ["X"] * 5)


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (node("1", "a", "DET") + "\n1\tb\tb\tNOUN\n", 2, "expected 10 tab-separated columns"),
        ("# x\n" + node("1", "a", "DET").replace("\t", " ") + "\n", 2, "10 tab-separated"),
        (node("x", "a", "DET") + "\n", 1, "expected an ID"),
        (node("0", "a", "DET") + "\n", 1, "expected word ID 1"),
        (node("1", "a", "DET") + "\n" + node("3", "b", "NOUN") + "\n", 2, "expected word ID 2"),
        (node("1", "a", "DET") + "\n# late\n", 2, "comment lines come before"),
        (node("1", "", "DET") + "\n", 1, "column FORM is empty"),
        ("# only a comment\n\n", 1, "expected node lines"),
    ],
)
def test_malformed_line_names_file_line_and_expectation(tmp_path, text, line, expected):
    path = write(tmp_path, text)
    with pytest.raises(ElmanError, match=expected) as err:
        read_conllu(path)
    assert f"{path}:{line}:" in str(err.value)


def test_empty_and_non_utf8_files_are_errors(tmp_path):
    with pytest.raises(ElmanError, match="empty"):
        read_conllu(write(tmp_path, ""))
    with pytest.raises(ElmanError, match="no sentences"):
        read_conllu(write(tmp_path, "\n\n"))
    bad = tmp_path / "bad.conllu"
    bad.write_bytes(b"1\t\xe9\n")
    with pytest.raises(ElmanError, match="UTF-8"):
        read_conllu(bad)


def test_crlf_and_missing_final_blank_line_are_read():
    text = SAMPLE.replace("\n", "\r\n").rstrip()
    assert [s.forms() for s in parse_conllu(text)] == [s.forms() for s in parse_conllu(SAMPLE)]


def test_random_toy_corpus_round_trips():
    rng = random.Random(0)
    text = "".join(sentence_block(rng, k) for k in range(30))
    out = io.StringIO()
    write_conllu(parse_conllu(text), out)
    assert out.getvalue() == text


@pytest.mark.data
def test_ud_lines_round_trips_byte_for_byte():
    root = os.environ.get("ELMAN_DATA")
    path = Path(root or "/nonexistent") / "ud/UD_English-LinES/en_lines-ud-dev.conllu"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    sentences = read_conllu(path)
    assert len(sentences) == 1118  # UD's stats for LinES dev
    out = io.StringIO()
    write_conllu(sentences, out)
    assert out.getvalue() == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "first, problem",
    [("1-3", "the sentence has 2 words"), ("2-3", "the sentence has 2 words")],
)
def test_a_multi_word_range_must_cover_the_words_that_follow(first, problem):
    text = (
        f"{first}\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "1\tdo\tdo\tAUX\t_\t_\t0\troot\t_\t_\n"
        "2\tn't\tnot\tPART\t_\t_\t1\tadvmod\t_\t_\n"
    )
    with pytest.raises(ElmanError, match=f"multi-word token {first} .*{problem}"):
        parse_conllu(text, "x.conllu")
    assert len(parse_conllu(text.replace(first, "1-2"), "x.conllu")) == 1


def test_a_multi_word_range_before_the_wrong_word_is_refused():
    text = (
        "1\tI\tI\tPRON\t_\t_\t2\tnsubj\t_\t_\n"
        "2\tdo\tdo\tAUX\t_\t_\t0\troot\t_\t_\n"
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "3\tn't\tnot\tPART\t_\t_\t2\tadvmod\t_\t_\n"
    )
    with pytest.raises(ElmanError, match="the next word is 3, not 2"):
        parse_conllu(text, "x.conllu")
