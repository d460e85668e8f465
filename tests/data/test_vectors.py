"""Reading, writing, looking up and training pretrained word vectors."""

from __future__ import annotations

import numpy as np
import pytest

from elman.data.vectors import lookup, read_vectors, train_vectors, write_vectors
from elman.errors import ElmanError


def test_write_then_read_gives_the_same_words_and_vectors(tmp_path):
    words = ["the", "cat", "Über"]
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    write_vectors(tmp_path / "v.vec", words, vectors)
    got_words, got = read_vectors(tmp_path / "v.vec")
    assert got_words == words
    np.testing.assert_allclose(got, vectors, rtol=1e-5)


def test_glove_files_have_no_header_and_limit_keeps_the_first_words(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 1 2 3\nof 4 5 6\nand 7 8 9\n", encoding="utf-8")
    words, vectors = read_vectors(path, limit=2)
    assert words == ["the", "of"]
    assert vectors.shape == (2, 3) and vectors[1, 2] == 6


def test_a_repeated_word_keeps_its_first_vector(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a 1 1\na 2 2\n", encoding="utf-8")
    words, vectors = read_vectors(path)
    assert words == ["a"] and vectors.tolist() == [[1, 1]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 3\nthe 1 2 3\nof 4 5\n", r"v\.txt:3: expected a word and 3 numbers"),
        ("the 1 2\nof 1 x\n", r"v\.txt:2: a value is not a number"),
        ("", "no vectors"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ElmanError, match=message):
        read_vectors(path)


def test_missing_and_non_utf8_files_are_one_line_errors(tmp_path):
    with pytest.raises(ElmanError, match="not found"):
        read_vectors(tmp_path / "nope.vec")
    bad = tmp_path / "bad.vec"
    bad.write_bytes(b"caf\xe9 1 2\n")
    with pytest.raises(ElmanError, match="not UTF-8"):
        read_vectors(bad)


def test_lookup_falls_back_to_the_lowercased_form():
    words = ["the", "Paris"]
    vectors = np.array([[1, 0], [0, 1]], dtype=np.float32)
    rows, found = lookup(["<pad>", "The", "the", "paris", "Paris", "cat"], words, vectors)
    assert found.tolist() == [False, True, True, False, True, False]
    assert rows[1].tolist() == [1, 0] and rows[4].tolist() == [0, 1]
    assert not rows[5].any()


def test_trained_vectors_repeat_with_the_seed_and_put_alike_words_together():
    pytest.importorskip("gensim")
    rng = np.random.default_rng(0)
    animals, foods = ["cat", "dog", "cow"], ["bread", "rice", "soup"]
    sentences = []
    for _ in range(400):
        sentences.append(["the", str(rng.choice(animals)), "sleeps", "quietly"])
        sentences.append(["we", "eat", str(rng.choice(foods)), "today"])
    words, a = train_vectors(sentences, dim=8, window=2, min_count=1, epochs=10, seed=3)
    words_b, b = train_vectors(sentences, dim=8, window=2, min_count=1, epochs=10, seed=3)
    assert words == words_b and np.array_equal(a, b)
    v = {w: a[i] / np.linalg.norm(a[i]) for i, w in enumerate(words)}
    assert v["cat"] @ v["dog"] > v["cat"] @ v["bread"]
