import pytest

from elman.data.text import read_lines, read_text, split_lines
from elman.errors import ElmanError


def test_read_lines_cuts_at_newline_only(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("one two\n\nthree\u2028four\r\n".encode())
    assert read_lines(f) == ["one two", "", "three\u2028four\r"]


def test_unterminated_last_line_is_kept_unless_blank():
    assert split_lines("a\nb") == ["a", "b"]
    assert split_lines("a \n ") == ["a "]  # ptb.char.*.txt end in " \n "
    assert split_lines("a\n") == ["a"]


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ElmanError, match=r"nope\.txt: no such file"):
        read_lines(tmp_path / "nope.txt")


def test_directory_is_an_error(tmp_path):
    with pytest.raises(ElmanError, match="is a directory"):
        read_text(tmp_path)


def test_empty_file_names_it(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_bytes(b"")
    with pytest.raises(ElmanError, match=r"empty\.txt: file is empty"):
        read_lines(f)


def test_bad_utf8_gives_line_and_byte_offset(tmp_path):
    f = tmp_path / "latin1.txt"
    data = "first line\nsecond\ncaf\u00e9 here\n".encode("latin-1")
    f.write_bytes(data)
    with pytest.raises(ElmanError) as err:
        read_lines(f)
    msg = str(err.value)
    assert "latin1.txt" in msg and "line 3" in msg
    assert f"byte offset {data.index(0xE9)}" in msg and "0xe9" in msg
    assert "iconv" in msg and "\n" not in msg


def test_a_gzip_compressed_corpus_reads_as_its_text(tmp_path):
    import gzip

    from elman.data.text import read_lines

    path = tmp_path / "train.en.gz"
    path.write_bytes(gzip.compress(b"A dog runs.\nTwo men talk.\n"))
    assert read_lines(path) == ["A dog runs.", "Two men talk."]
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ElmanError, match="bad.gz: not a valid gzip file"):
        read_lines(bad)
