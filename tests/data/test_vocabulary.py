import json

import pytest
import torch

from elman.data.vocabulary import EOS, UNK, Vocabulary
from elman.errors import ElmanError

TOKENS = "b a c a b a d d e".split()  # a:3, b:2, d:2, c:1, e:1


def test_specials_first_then_frequency_then_alphabetical():
    v = Vocabulary.build(TOKENS)
    assert v.itos == [UNK, EOS, "a", "b", "d", "c", "e"]
    assert (v.unk_index, v.eos_index) == (0, 1)
    assert Vocabulary.build(reversed(TOKENS)) == v  # order of the corpus does not matter


def test_specials_seen_in_the_corpus_are_not_duplicated():
    v = Vocabulary.build(["x", UNK, "x", EOS, UNK])
    assert v.itos == [UNK, EOS, "x"]


def test_min_count_and_max_size_map_the_rest_to_unk():
    v = Vocabulary.build(TOKENS, min_count=2)
    assert v.itos == [UNK, EOS, "a", "b", "d"]
    assert v.index("e") == v.unk_index
    v = Vocabulary.build(TOKENS, max_size=4)  # specials count toward the size
    assert v.itos == [UNK, EOS, "a", "b"]
    assert v.encode(["d", "a", "zzz"]).tolist() == [0, 2, 0]


def test_char_vocabulary_without_eos():
    v = Vocabulary.build("hello\n", specials=(UNK,))
    assert v.itos == [UNK, "l", "\n", "e", "h", "o"]
    assert v.eos_index is None


def test_encode_decode_round_trip():
    v = Vocabulary.build(TOKENS)
    ids = v.encode(TOKENS + ["unseen"])
    assert ids.dtype == torch.long and ids.shape == (len(TOKENS) + 1,)
    assert v.decode(ids) == TOKENS + [UNK]
    assert v.decode([2, 3]) == ["a", "b"]
    assert len(v) == 7 and v[2] == "a" and "a" in v and "zz" not in v


def test_to_dict_is_json_and_round_trips():
    v = Vocabulary.build(TOKENS, min_count=2)
    d = json.loads(json.dumps(v.to_dict()))
    w = Vocabulary.from_dict(d)
    assert w == v and w.unk_index == v.unk_index and w.eos_index == v.eos_index


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"itos": "abc"},
        {"itos": [1, 2]},
        {"itos": ["a", "a"]},
        {"format": 99, "itos": ["a"]},
        [],
    ],
)
def test_from_dict_rejects_malformed(bad):
    with pytest.raises(ElmanError, match="vocabulary"):
        Vocabulary.from_dict(bad)


def test_without_unk_an_unknown_token_is_an_error():
    v = Vocabulary(["a", "b"])
    assert v.unk_index is None
    with pytest.raises(ElmanError, match="'c'"):
        v.encode(["a", "c"])
    with pytest.raises(ElmanError, match="'c'"):
        v.index("c")


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(TOKENS, min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(TOKENS, max_size=1)
    with pytest.raises(ValueError, match="more than once"):
        Vocabulary(["a", "b", "a"])
