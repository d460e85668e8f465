"""Reading n-best lists: Moses (both feature spellings) and Kaldi, malformed lines in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.data.nbest import parse_features, read_kaldi, read_moses, read_references
from elman.errors import ElmanError

MOSES = """\
0 ||| a dog runs ||| LM0= -12.5 TM0= -1 -2.5 -3 WordPenalty0= -3 ||| -7.25 ||| 0-0 1-1
0 ||| the dog runs ||| LM0= -11 TM0= -2 -2 -3 WordPenalty0= -3 ||| -7.5
1 ||| hello ||| score=-0.5 ||| -0.5
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_moses_list_both_feature_spellings(tmp_path: Path) -> None:
    nbest = read_moses(write(tmp_path / "n", MOSES))
    assert nbest.ids == ["0", "1"] and len(nbest) == 2
    first = nbest.lists["0"][0]
    assert first.text == "a dog runs"
    assert first.features == {
        "LM0": -12.5, "TM0_0": -1.0, "TM0_1": -2.5, "TM0_2": -3.0, "WordPenalty0": -3.0,
        "total": -7.25,
    }  # fmt: skip
    assert nbest.lists["1"][0].features == {"score": -0.5, "total": -0.5}
    assert nbest.feature_names()[:2] == ["LM0", "TM0_0"] and "score" in nbest.feature_names()
    assert first.where.endswith(":1")


def test_what_elman_translate_writes_is_read(tmp_path: Path) -> None:
    """The lines of `elman translate --n-best K` (elman/inference/translate.py's example)."""
    text = (
        "0 ||| A dog runs through a grassy field. ||| logprob=-2.913502 pieces=9 ||| -1.245358\n"
        "0 ||| A dog. ||| logprob=-5 pieces=3 ||| -4.4\n"
    )
    nbest = read_moses(write(tmp_path / "n", text))
    assert nbest.lists["0"][0].text == "A dog runs through a grassy field."
    assert [h.features for h in nbest.lists["0"]] == [
        {"logprob": -2.913502, "pieces": 9.0, "total": -1.245358},
        {"logprob": -5.0, "pieces": 3.0, "total": -4.4},
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 ||| a b", "expected 'id ||| hypothesis ||| features"),
        ("0 1 ||| a ||| x=1", "expected 'id ||| hypothesis"),
        ("0 ||| a ||| -1 x= 2", "value '-1' before any feature name"),
        ("0 ||| a ||| x= y= 2", "feature x has no value"),
        ("0 ||| a ||| x= abc", "feature x: expected a number, found 'abc'"),
        ("0 ||| a ||| x= nan", "feature x is nan, not a finite number"),
        ("0 ||| a ||| x=1 x=2", "feature x twice"),
        ("0 ||| a ||| x=1 ||| big", "the total score (fourth field): expected a number"),
        ("0 ||| a ||| total=1 ||| 2", "named total"),
    ],
)
def test_malformed_moses_line_names_file_and_line(tmp_path, line, message) -> None:
    path = write(tmp_path / "bad.nbest", "0 ||| fine ||| x=1 ||| 1\n" + line + "\n")
    with pytest.raises(ElmanError, match=r"bad\.nbest:2: ") as err:
        read_moses(path)
    assert message in str(err.value)


def test_parse_features_accepts_attached_and_separate_values() -> None:
    assert parse_features("a=1 b= 2 3 c=-4", "x") == {"a": 1.0, "b_0": 2.0, "b_1": 3.0, "c": -4.0}


def test_kaldi_text_and_score_files(tmp_path: Path) -> None:
    text = write(tmp_path / "text", "utt1-1 a b c\nutt1-2 a b\nspk-utt2-1 \nspk-utt2-2 x\n")
    am = write(tmp_path / "am", "utt1-1 10\nutt1-2 12\nspk-utt2-1 3\nspk-utt2-2 4\n")
    lm = write(tmp_path / "lm", "utt1-1 5\nutt1-2 4\nspk-utt2-1 1\nspk-utt2-2 2.5\n")
    nbest = read_kaldi(text, {"am": am, "lm": lm}, costs=True)
    assert nbest.format == "kaldi" and nbest.ids == ["utt1", "spk-utt2"]
    assert [h.text for h in nbest.lists["spk-utt2"]] == ["", "x"]
    assert nbest.lists["utt1"][1].features == {"am": -12.0, "lm": -4.0}  # costs negated
    refs = write(tmp_path / "refs", "spk-utt2 x\nutt1 a b c\n")
    assert read_references(refs, nbest) == ["a b c", "x"]


@pytest.mark.parametrize(
    "text, am, message",
    [
        ("utt1 a b\n", "utt1 1\n", "text:1: expected UTTERANCE-N"),
        ("utt1-1 a\n", "utt1-2 1\n", "no am score for utt1-1"),
        ("utt1-1 a\n", "utt1-1 1\nutt9-1 2\n", "utt9-1 is not a hypothesis"),
        ("utt1-1 a\n", "utt1-1 1 2\n", "am:1: expected 'UTTERANCE-N value'"),
        ("utt1-1 a\n", "utt1-1 x\n", "am:1: score am: expected a number"),
        ("utt1-1 a\nutt1-1 b\n", "utt1-1 1\n", "text:2: hypothesis utt1-1 a second time"),
    ],
)
def test_malformed_kaldi_files_are_one_line(tmp_path, text, am, message) -> None:
    with pytest.raises(ElmanError, match=message):
        read_kaldi(write(tmp_path / "text", text), {"am": write(tmp_path / "am", am)})


def test_references_must_match_the_list(tmp_path: Path) -> None:
    nbest = read_moses(write(tmp_path / "n", MOSES))
    with pytest.raises(ElmanError, match="3 reference lines for the 2 sentences"):
        read_references(write(tmp_path / "r", "a\nb\nc\n"), nbest)
    assert read_references(write(tmp_path / "r2", "a  dog\n\n"), nbest) == ["a dog", ""]


def test_non_utf8_nbest_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "n"
    path.write_bytes(b"0 ||| a ||| x=1\n0 ||| \xff ||| x=1\n")
    with pytest.raises(ElmanError, match="line 2"):
        read_moses(path)
