"""ARPA back-off files: the text format SRILM, KenLM and most decoders read.

    \\data\\
    ngram 1=3
    ngram 2=2

    \\1-grams:
    -99      <s>     -0.30
    -0.47    </s>
    -0.30    a       -0.17

    \\2-grams:
    -0.17    <s> a
    -0.04    a </s>

    \\end\\

Each entry is ``log10 p``, the n-gram's words, and (optionally, below the highest
order) the log10 back-off weight; a missing weight is 0.  Fields are separated by
tabs or spaces.  Values are written with 8 digits after the point (each probability to
1.2e-8 relative), or on request in Python's shortest round-trip form, so that reading the
file gives back every log10 value bit for bit.
A malformed file raises ElmanError naming ``file:line`` and what was expected.

Values are checked as KenLM checks them: a log10 probability is a number <= 0, where
probability zero is written -99 (SRILM's and KenLM's convention, e.g. for <s>, which is
never predicted) or -inf; a back-off weight is any finite number (log10 of a weight,
which may exceed 1).  NaN, +inf, a positive log10 probability (KenLM: "a bug in IRSTLM")
and an infinite back-off weight would score silently wrong, so they are refused with the
file and line.  A file is written atomically (:func:`elman.files.atomic_open`): a build
killed while writing leaves the old file whole.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable
from itertools import chain, islice
from pathlib import Path
from typing import IO

import numpy as np

from elman.errors import ElmanError
from elman.files import atomic_open
from elman.models.ngram import arpa_lines, threads
from elman.models.ngram.arpa_lines import DECIMALS, Vocabulary, entry_lines
from elman.models.ngram.counts import quiet
from elman.models.ngram.model import NgramLM, find_rows
from elman.models.ngram.threads import in_order

CHUNK = 100_000  # entry lines parsed at a time (bounds the Python strings)
BLOCK = 50_000  # entry lines made at a time (their byte arrays stay in the CPU's caches)


def write_arpa(
    lm: NgramLM,
    path: str | Path,
    phase: Callable[[str], None] = quiet,
    decimals: int | None = DECIMALS,
) -> None:
    """Write ``lm`` to ``path`` as an ARPA file, atomically: ``path`` is replaced only once the
    whole file is written and on disk (an error or a kill before leaves the old file).

    Every log10 value is written with ``decimals`` digits after the point (8: each
    probability to 1.2e-8 relative, :mod:`elman.models.ngram.arpa_lines`), or with
    ``decimals=None`` in Python's shortest round-trip form, so that reading the file gives
    back every value bit for bit (several times slower).  ``phase`` is told how far the
    writing is (a large model's file is gigabytes)."""
    if decimals is not None and decimals < 1:
        raise ValueError(f"decimals must be >= 1 or None, got {decimals}")
    values = [*lm.logp, *lm.logbo]
    exact = decimals is None or not all(arpa_lines.writable(v) for v in values)
    vocab = lm.vocab if exact else Vocabulary(lm.vocab)
    with atomic_open(path, "wb") as f:
        write_header(f, lm.counts())
        for n in range(1, lm.order + 1):
            logbo = lm.logbo[n - 1] if n < lm.order else None
            words = _model_words(lm, n)
            write_section(f, n, vocab, words, lm.logp[n - 1], logbo, phase,
                          None if exact else decimals)  # fmt: skip
        write_end(f)


def write_header(f: IO[bytes], counts: list[int]) -> None:
    """The ``\\data\\`` section: the number of n-grams of each order."""
    header = [f"ngram {n}={count}\n" for n, count in enumerate(counts, start=1)]
    f.write(("\n\\data\\\n" + "".join(header)).encode())


def write_end(f: IO[bytes]) -> None:
    f.write(b"\n\\end\\\n")


Words = Callable[[np.ndarray], np.ndarray]  # rows of an order -> their word ids (rows, n)


def _model_words(lm: NgramLM, n: int) -> Words:
    """The word ids (len(rows), n) of the listed n-grams of order ``n`` in ``rows``."""

    def words(rows: np.ndarray) -> np.ndarray:
        V = lm.vocab_size
        out = np.empty((len(rows), n), dtype=np.int64)
        for m in range(n, 1, -1):
            rows, out[:, m - 1] = np.divmod(lm.keys[m - 1][rows], V)
        out[:, 0] = rows
        return out

    return words


def write_section(
    f: IO[bytes],
    n: int,
    vocab: list[str] | Vocabulary,
    words: Words,
    logp: np.ndarray,
    logbo: np.ndarray | None,
    phase: Callable[[str], None] = quiet,
    decimals: int | None = DECIMALS,
) -> None:
    """The section of order ``n``: its title and one line per n-gram, whose word ids
    ``words`` gives a block of rows at a time; ``logbo`` is None at the highest order.
    Values have ``decimals`` digits after the point, or (None) Python's exact form."""
    f.write(f"\n\\{n}-grams:\n".encode())
    total = len(logp)
    if decimals is None:
        _write_exact(f, n, vocab if isinstance(vocab, list) else vocab.words, words, logp,
                     logbo, phase)  # fmt: skip
        return
    table = vocab if isinstance(vocab, Vocabulary) else Vocabulary(vocab)

    def lines(first: int) -> np.ndarray:
        part = slice(first, first + BLOCK)
        rows = np.arange(first, min(first + BLOCK, total), dtype=np.int64)
        block_bo = None if logbo is None else logbo[part]
        return entry_lines(table, words(rows), logp[part], block_bo, decimals)

    # the blocks are made by threads ahead of the writing (elman.models.ngram.threads): with
    # several cores, one more than their number, as the caller's writing holds one of them
    workers = threads.WORKERS + 1 if threads.WORKERS > 1 else 1
    for first, text in in_order(lines, range(0, total, BLOCK), workers):
        phase(f"writing {n}-grams ({100 * first // total}%)")
        f.write(text.data)


def _write_exact(
    f: IO[bytes],
    n: int,
    vocab: list[str],
    words: Words,
    logp: np.ndarray,
    logbo: np.ndarray | None,
    phase: Callable[[str], None],
) -> None:
    total = len(logp)
    for first in range(0, total, CHUNK):
        phase(f"writing {n}-grams ({100 * first // total}%)")
        part = slice(first, first + CHUNK)
        rows = np.arange(first, min(first + CHUNK, total), dtype=np.int64)
        text = [" ".join(vocab[w] for w in ws) for ws in words(rows).tolist()]
        probs = map(repr, logp[part].tolist())
        if logbo is not None:
            backoffs = logbo[part].tolist()
            lines = [
                f"{p}\t{t}\t{b!r}" if b != 0.0 else f"{p}\t{t}"
                for p, t, b in zip(probs, text, backoffs, strict=True)
            ]
        else:
            lines = [f"{p}\t{t}" for p, t in zip(probs, text, strict=True)]
        f.write(("\n".join(lines) + "\n").encode())


class _Reader:
    """Streams the lines of an ARPA file, counting them for error messages."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        try:
            self.file = open(path, encoding="utf-8")  # closed by read_arpa
        except FileNotFoundError:
            raise ElmanError(f"{path}: no such ARPA file; check the path") from None
        except OSError as err:
            raise ElmanError(f"{path}: cannot read ({err.strerror or err})") from None
        self.lineno = 0  # number of the last line read
        self.pending: str | None = None  # a line read ahead and put back

    def readline(self) -> str | None:
        """The next line without its newline, or None at the end of the file."""
        if self.pending is not None:
            line, self.pending = self.pending, None
        else:
            try:
                line = self.file.readline()
            except UnicodeDecodeError:
                raise ElmanError(
                    f"{self.path}:{self.lineno + 1}: not valid UTF-8; ARPA files are UTF-8 text"
                ) from None
            if not line:
                return None
        self.lineno += 1
        return line.rstrip("\n")

    def unread(self, line: str) -> None:
        self.pending = line
        self.lineno -= 1

    def lines(self, count: int) -> list[str]:
        """Up to ``count`` further lines (fewer at the end of the file)."""
        out = []
        if count and self.pending is not None:
            out.append(self.pending)
            self.pending = None
        try:
            out.extend(line.rstrip("\n") for line in islice(self.file, count - len(out)))
        except UnicodeDecodeError:
            raise ElmanError(f"{self.path}: not valid UTF-8 after line {self.lineno}") from None
        self.lineno += len(out)
        return out

    def fail(self, lineno: int, expected: str, found: str | None) -> ElmanError:
        shown = "end of file" if found is None else repr(found.strip()[:60])
        return ElmanError(f"{self.path}:{lineno}: expected {expected}, found {shown}")

    def next_nonblank(self, expected: str) -> str:
        while True:
            line = self.readline()
            if line is None:
                raise ElmanError(
                    f"{self.path}: ended after line {self.lineno}; expected {expected}"
                )
            if line.strip():
                return line.strip()


def _header(r: _Reader) -> list[int]:
    """Skip to \\data\\ and read the ``ngram n=count`` lines."""
    while (line := r.readline()) is not None and line.strip() != "\\data\\":
        pass
    if line is None:
        raise ElmanError(f"{r.path}: no '\\data\\' line; not an ARPA file")
    counts: list[int] = []
    while (line := r.readline()) is not None:
        text = line.strip()
        if not text and not counts:
            continue
        if not text or text.startswith("\\"):
            r.unread(line)
            break
        head, _, value = text.partition("=")
        name, _, n = head.partition(" ")
        if name != "ngram" or n.strip() != str(len(counts) + 1) or not value.strip().isdigit():
            raise r.fail(r.lineno, f"'ngram {len(counts) + 1}=<count>'", line)
        counts.append(int(value))
    if not counts:
        raise r.fail(r.lineno + 1, "'ngram 1=<count>' after '\\data\\'", line)
    return counts


def _parse(r: _Reader, lines: list[str], first: int, n: int, top: bool, total: int):
    """Parse entry lines of order n (``first``: line number of lines[0]).

    Returns (log10 p, words of each entry, log10 b) with words as a list of lists.
    """
    fields = [line.split() for line in lines]
    allowed = (n + 1,) if top else (n + 1, n + 2)
    for k, f in enumerate(fields):
        if len(f) not in allowed:
            if not f or f[0].startswith("\\"):
                expected = f"{total} {n}-grams, as the header says"
            else:
                expected = f"a {n}-gram entry: log10 probability, {n} word(s)" + (
                    "" if top else " and an optional back-off weight"
                )
            raise r.fail(first + k, expected, lines[k])
    try:
        logp = np.array([f[0] for f in fields], dtype=np.float64)
        logbo = np.array([f[n + 1] if len(f) > n + 1 else "0" for f in fields], dtype=np.float64)
    except ValueError:
        for k, f in enumerate(fields):
            for value in (f[0], *f[n + 1 :]):
                try:
                    float(value)
                except ValueError:
                    raise r.fail(
                        first + k, "numbers in the probability and back-off fields", lines[k]
                    ) from None
        raise
    return logp, [f[1 : n + 1] for f in fields], logbo


def read_arpa(path: str | Path) -> NgramLM:
    """Read an ARPA file (ours, KenLM's, SRILM's) into an :class:`NgramLM`."""
    r = _Reader(path)
    # Parsing makes millions of short-lived lists; the cyclic collector would
    # otherwise rescan them all again and again (3x slower).
    collecting = gc.isenabled()
    gc.disable()
    try:
        with r.file:
            return _read(r)
    finally:
        if collecting:
            gc.enable()


def _read(r: _Reader) -> NgramLM:
    counts = _header(r)
    N = len(counts)
    vocab: list[str] = []
    index: dict[str, int] = defaultdict(lambda: -1)  # word -> id; unknown words -> -1
    keys: list[np.ndarray] = []  # per order, sorted; order 1: the word ids
    logps, logbos = [], []
    for n in range(1, N + 1):
        line = r.next_nonblank(f"'\\{n}-grams:'")
        if line != f"\\{n}-grams:":
            raise r.fail(r.lineno, f"'\\{n}-grams:' (the header lists {N} orders)", line)
        section_start = r.lineno + 1
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        done, total = 0, counts[n - 1]
        while done < total:
            first = r.lineno + 1
            chunk = r.lines(min(CHUNK, total - done))
            if len(chunk) < min(CHUNK, total - done):
                raise r.fail(r.lineno + 1, f"{total} {n}-grams, as the header says", None)
            fast = _fast(chunk, n, index, keys) if n > 1 else None
            if fast is not None:
                key, logp, logbo = fast
            else:
                logp, words, logbo = _parse(r, chunk, first, n, n == N, total)
                if n == 1:
                    key = _add_words(r, words, vocab, index, first, chunk)
                else:
                    key = _keys(r, words, index, keys, n, first, chunk)
            _check_values(r, first, chunk, logp, logbo)
            parts.append((key, logp, logbo))
            done += len(chunk)
        key, logp, logbo = (
            (np.concatenate(x) for x in zip(*parts, strict=True))
            if parts
            else (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        )
        order = np.argsort(key, kind="stable")
        key = key[order]
        dup = np.flatnonzero(np.diff(key) == 0)
        if len(dup):
            raise r.fail(
                section_start + int(order[dup[0] + 1]), f"each {n}-gram once (listed twice)", None
            )
        keys.append(key)
        logps.append(logp[order])
        if n < N:
            logbos.append(logbo[order])
    line = r.next_nonblank("'\\end\\'")
    if line != "\\end\\":
        raise r.fail(r.lineno, "'\\end\\' after the last section", line)
    return NgramLM(vocab, keys[1:], logps, logbos)


def _check_values(
    r: _Reader, first: int, chunk: list[str], logp: np.ndarray, logbo: np.ndarray
) -> None:
    """Refuse a log10 probability that is NaN, +inf or positive, or a back-off weight that
    is not finite (module docstring); ``first`` is the line number of ``chunk[0]``."""
    bad_p = np.flatnonzero(~(logp <= 0.0))  # NaN fails every comparison; -inf passes
    bad_b = np.flatnonzero(~np.isfinite(logbo))
    if not len(bad_p) and not len(bad_b):
        return
    k = int(min(bad_p[:1].tolist() + bad_b[:1].tolist()))
    line = " ".join(chunk[k].split())[:60]
    if len(bad_p) and bad_p[0] == k:
        raise ElmanError(
            f"{r.path}:{first + k}: log10 probability {float(logp[k])!r} is not a probability's "
            f"log (a number <= 0, with -99 or -inf for zero) in {line!r}; the file is damaged "
            "or was written by a tool with a bug: rebuild it"
        )
    raise ElmanError(
        f"{r.path}:{first + k}: back-off weight {float(logbo[k])!r} is not a finite number in "
        f"{line!r}; the file is damaged or was written by a tool with a bug: rebuild it"
    )


def _fast(chunk: list[str], n: int, index: dict, keys: list[np.ndarray]):
    """Order-n entries in the usual layout ``log10p<TAB>w_1 .. w_n[<TAB>log10b]`` with
    single spaces between words (KenLM, SRILM, ours).  Returns (keys, log10 p, log10 b),
    or None when any line is laid out differently; the general parser then reads the
    chunk (and names any problem)."""
    parts = [line.split("\t") for line in chunk]
    if any(len(p) not in (2, 3) for p in parts):
        return None
    try:
        logp = np.array([p[0] for p in parts], dtype=np.float64)
        logbo = np.array([p[2] if len(p) == 3 else "0" for p in parts], dtype=np.float64)
    except ValueError:
        return None
    words = " ".join([p[1] for p in parts]).split(" ")  # all words, n per entry
    if len(words) != n * len(parts):
        return None
    ids = np.fromiter(map(index.__getitem__, words), np.int64, len(words))
    key = _context_keys(ids.reshape(len(parts), n), keys)  # ids: (M, n)
    return None if key is None else (key, logp, logbo)


def _context_keys(ids: np.ndarray, keys: list[np.ndarray]) -> np.ndarray | None:
    """Keys ``context_row * V + w_n`` of n-grams given as word ids, shape (M, n); None
    when a word is unknown (id -1) or a context w_1..w_{n-1} is not listed."""
    if (ids < 0).any():
        return None
    V = len(keys[0])
    row = ids[:, 0]
    for j in range(1, ids.shape[1] - 1):  # row of w_1..w_{j+1}, one order at a time
        row = find_rows(keys[j], row, ids[:, j], V)
    if (row < 0).any():
        return None
    return row * V + ids[:, -1]


def _add_words(r: _Reader, words, vocab: list[str], index: dict, first: int, chunk) -> np.ndarray:
    """Give each unigram the next word id; returns their keys (the ids)."""
    start = len(vocab)
    for k, (w,) in enumerate(words):
        if index[w] >= 0:
            raise r.fail(first + k, "each unigram once (this one is listed twice)", chunk[k])
        index[w] = len(vocab)
        vocab.append(w)
    return np.arange(start, len(vocab), dtype=np.int64)


def _keys(r: _Reader, words, index, keys, n: int, first: int, chunk: list[str]) -> np.ndarray:
    """Keys ``context_row * V + word`` of order-n entries given as lists of words."""
    V = len(keys[0])
    flat = np.fromiter(map(index.__getitem__, chain.from_iterable(words)), np.int64, len(words) * n)
    ids = flat.reshape(len(words), n)  # (M, n)
    missing = np.flatnonzero((ids < 0).any(axis=1))
    if len(missing):
        k = int(missing[0])
        raise r.fail(first + k, f"a {n}-gram made of words listed as 1-grams", chunk[k])
    row = ids[:, 0]
    for j in range(1, n - 1):  # row of the context w_1..w_{n-1}, one order at a time
        row = find_rows(keys[j], row, ids[:, j], V)
    unlisted = np.flatnonzero(row < 0)
    if len(unlisted):
        k = int(unlisted[0])
        raise r.fail(
            first + k, f"a {n}-gram whose first {n - 1} words are a listed {n - 1}-gram", chunk[k]
        )
    return row * V + ids[:, n - 1]
