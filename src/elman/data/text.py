"""Reading corpus files: strict UTF-8, one clear error per bad file.

Every corpus in elman is read through :func:`read_text` (the whole file as one string,
for character corpora) or :func:`read_lines` (the file cut at ``"\\n"``).  A missing,
empty or non-UTF-8 file raises :class:`~elman.errors.ElmanError` with one line that
names the file (and, for bad UTF-8, the line and byte offset) and says how to fix it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from elman.errors import ElmanError


def read_bytes(path: str | Path) -> bytes:
    """The raw bytes of ``path``; a missing, unreadable or empty file is an ElmanError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ElmanError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ElmanError(f"{path}: is a directory, expected a text file") from None
    except PermissionError:
        raise ElmanError(f"{path}: permission denied; make the file readable") from None
    except OSError as err:
        raise ElmanError(f"{path}: cannot read ({err.strerror or err})") from None
    if not data:
        raise ElmanError(f"{path}: file is empty; a corpus needs at least one line of text")
    return data


def decode_utf8(data: bytes, path: str | Path) -> str:
    """``data`` decoded as strict UTF-8; an invalid byte names its line and byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.start + 1].hex()
        raise ElmanError(
            f"{path}: line {line}, byte offset {err.start}: not valid UTF-8 (byte 0x{bad}); "
            "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
        ) from None


BOM = "\ufeff"  # what some editors write first in a UTF-8 file; never part of the text


def gunzip(data: bytes, path: str | Path) -> bytes:
    """``data`` decompressed when ``path`` ends in ``.gz`` (as corpora are often shipped)."""
    if Path(path).suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ElmanError(f"{path}: not a valid gzip file ({err}); fetch it again") from None


def read_text(path: str | Path) -> str:
    """The whole file as one string (strict UTF-8, gzip-compressed if it ends in ``.gz``,
    newlines kept as they are; a leading byte order mark is dropped, so it is not glued to the
    first word)."""
    return decode_utf8(gunzip(read_bytes(path), path), path).removeprefix(BOM)


def split_lines(text: str) -> list[str]:
    """Cut ``text`` at ``"\\n"``; the line terminators are not kept.

    Only ``"\\n"`` ends a line (not ``"\\r"`` or Unicode line separators, which
    ``str.splitlines`` would also cut at), so line counts match ``wc -l`` and the
    ``for line in f`` loops behind the published token counts.  A last fragment after the
    final newline counts as a line unless it is only whitespace (``ptb.char.*.txt`` end
    in ``" \\n "``).
    """
    lines = text.split("\n")
    if not lines[-1].strip():
        lines.pop()
    return lines


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, without their ``"\\n"`` (see :func:`split_lines`).

    Raises ElmanError for a missing, empty or non-UTF-8 file.
    """
    return split_lines(read_text(path))


def iter_lines(stream: IO[bytes], name: str, blank_tail: bool = True) -> Iterator[str]:
    """The lines of a binary stream one at a time, without their ``"\\n"`` (as
    :func:`split_lines` cuts them, a last line without a newline included), in bounded memory:
    a stream of millions of lines is never held whole. A line that is not valid UTF-8 stops
    with one line naming ``name``, the line number and the byte; a leading byte order mark is
    dropped.  Without ``blank_tail`` a last line that has no newline and only whitespace is
    dropped, as :func:`split_lines` drops it."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start : err.start + 1].hex()
            raise ElmanError(
                f"{name}: line {number}, byte {err.start + 1} of the line: not valid UTF-8 "
                f"(byte 0x{bad}); re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
            ) from None
        if number == 1:
            line = line.removeprefix(BOM)
        if line.endswith("\n"):
            yield line[:-1]
        elif blank_tail or line.strip():
            yield line


def stream_lines(path: str | Path) -> Iterator[str]:
    """The lines :func:`read_lines` gives, read one at a time (a corpus of gigabytes is never
    held whole); the same errors, raised as the reading reaches them.  A ``.gz`` file is
    read whole, as :func:`read_lines` reads it."""
    if Path(path).suffix == ".gz":
        yield from read_lines(path)
        return
    with open_binary(path) as stream:
        empty = True
        for line in iter_lines(stream, str(path), blank_tail=False):
            empty = False
            yield line
    if empty and Path(path).stat().st_size == 0:
        raise ElmanError(f"{path}: file is empty; a corpus needs at least one line of text")


def open_binary(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading bytes (for :func:`iter_lines`); a missing or unreadable file,
    or a folder, is one line naming it. An empty file is not an error here: no lines."""
    path = Path(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ElmanError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ElmanError(f"{path}: is a directory, expected a text file") from None
    except PermissionError:
        raise ElmanError(f"{path}: permission denied; make the file readable") from None
    except OSError as err:
        raise ElmanError(f"{path}: cannot read ({err.strerror or err})") from None
