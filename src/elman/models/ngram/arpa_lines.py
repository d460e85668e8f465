"""ARPA entry lines made by NumPy, without a Python string per line.

An ARPA file of a large model has tens of millions of lines ``log10 p \\t w_1 … w_n \\t
log10 b``; formatting each number with Python costs about a microsecond and dominated the
build (13 of WikiText-2's 19 s).  Here a block of lines is one byte array:

- each log10 value becomes fixed-point text with ``decimals`` digits after the point,
  written digit by digit into a right-aligned byte matrix (integer division by 10, a column
  at a time), its separator in the last column: -0.5 is ``-0.50000000``;
- each line is a list of n + 2 segments (the number and a tab, each word with the space,
  tab or newline after it, the back-off weight and a newline, or nothing), each a slice of
  one source buffer holding the vocabulary's UTF-8 bytes and the numbers' matrices;
- one gather, ``source[np.repeat(starts - offsets, lengths) + arange(total)]``, lays every
  segment end to end.

Fixed-point is the right measure for log-probabilities: the absolute error of a log10 value,
at most 0.5 · 10^−decimals, is the relative error of the probability (10^(5e-9) − 1 ≈ 1.2e-8
for 8 decimals), whatever the value's size.  lmplz writes float32 values, about 7 significant
digits.  Values that are not finite or beyond ±1e9 cannot be written this way;
:func:`elman.models.ngram.arpa.write_arpa` writes those models with Python's exact repr.
"""

from __future__ import annotations

import numpy as np

DECIMALS = 8  # the default: 5e-9 in log10, a probability to 1.2e-8 relative
LIMIT = 1e9  # |value| above this (or not finite) is not written in fixed point


def writable(values: np.ndarray) -> bool:
    """Whether every value can be written in fixed point (finite and within ±LIMIT)."""
    return bool(np.all(np.isfinite(values)) and np.all(np.abs(values) <= LIMIT))


def fixed_point(
    values: np.ndarray, decimals: int, suffix: bytes = b""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value as text followed by ``suffix``: (matrix, start, length), row i's text being
    ``matrix[i, start[i] : start[i] + length[i]]`` in ASCII, right-aligned.  Every value has
    ``decimals`` >= 1 digits after the point (ties to even): a fixed end, so that the
    suffix is a column of the matrix; one that rounds to 0 has no sign."""
    values = np.asarray(values, dtype=np.float64)
    scale = 10**decimals
    scaled = np.rint(np.abs(values) * scale).astype(np.int64)
    whole, fraction = np.divmod(scaled, scale)
    top = int(whole.max(initial=0))
    int_digits = np.ones(len(values), dtype=np.int64)
    for power in range(1, len(str(top))):
        int_digits += whole >= 10**power
    point = 1 + len(str(top))  # after the sign and the widest whole part
    width = point + 1 + decimals + len(suffix)
    text = np.empty((len(values), width), dtype=np.uint8)
    _digits(text[:, 1:point], whole)
    text[:, point] = ord(".")
    _digits(text[:, point + 1 : point + 1 + decimals], fraction)
    if suffix:
        text[:, -len(suffix) :] = np.frombuffer(suffix, dtype=np.uint8)
    negative = (values < 0) & (scaled != 0)
    length = int_digits + 1 + decimals + len(suffix) + negative
    signed = np.flatnonzero(negative)
    text.reshape(-1)[signed * width + width - length[signed]] = ord("-")
    return text, width - length, length


def _digits(out: np.ndarray, numbers: np.ndarray) -> None:
    """Write each number's decimal digits, zero-padded, into its row of ``out`` (rows, width),
    from the right; in int32 where the numbers fit (twice as fast a division as int64)."""
    rest = numbers.astype(np.int32) if numbers.max(initial=0) < 2**31 else numbers
    for k in range(out.shape[1] - 1, -1, -1):
        quotient = rest // 10  # np.divmod is three times slower
        out[:, k] = rest - quotient * 10
        rest = quotient
    out += ord("0")


class Vocabulary:
    """The words' UTF-8 bytes, three times end to end: each word followed by a space, by a
    tab and by a newline, so that a word and the separator after it are one slice."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        encoded = [w.encode() for w in words]
        self.length = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        start = np.cumsum(self.length + 1) - (self.length + 1)
        size = int((self.length + 1).sum())
        self.space, self.tab, self.newline = start, start + size, start + 2 * size
        self.bytes = np.frombuffer(
            b"".join(b"".join(w + sep for w in encoded) for sep in (b" ", b"\t", b"\n")),
            dtype=np.uint8,
        )


def entry_lines(
    vocab: Vocabulary,
    words: np.ndarray,
    logp: np.ndarray,
    logbo: np.ndarray | None,
    decimals: int,
) -> np.ndarray:
    """The ARPA lines of a block of n-grams, each ending in a newline, as one byte array.

    ``words`` is (rows, n) word ids.  A back-off weight of 0 is not written (as SRILM);
    ``logbo`` is None at the highest order."""
    rows, n = words.shape
    p_text, p_start, p_len = fixed_point(logp, decimals, b"\t")
    parts = [vocab.bytes, p_text.reshape(-1)]
    base_p = len(vocab.bytes)
    # per line: log10 p and a tab; the words, each with the space, tab or newline after it;
    # the back-off weight and a newline
    starts = np.empty((rows, n + 2), dtype=np.int64)
    lengths = np.empty((rows, n + 2), dtype=np.int64)
    starts[:, 0] = base_p + np.arange(rows) * p_text.shape[1] + p_start
    lengths[:, 0] = p_len
    for j in range(n - 1):
        starts[:, 1 + j] = vocab.space[words[:, j]]
        lengths[:, 1 + j] = vocab.length[words[:, j]] + 1
    last = words[:, n - 1]
    lengths[:, n] = vocab.length[last] + 1
    if logbo is None:
        starts[:, n] = vocab.newline[last]
        starts[:, n + 1] = lengths[:, n + 1] = 0
    else:
        b_text, b_start, b_len = fixed_point(logbo, decimals, b"\n")
        parts.append(b_text.reshape(-1))
        written = logbo != 0.0
        starts[:, n] = np.where(written, vocab.tab[last], vocab.newline[last])
        starts[:, n + 1] = base_p + p_text.size + np.arange(rows) * b_text.shape[1] + b_start
        lengths[:, n + 1] = np.where(written, b_len, 0)
    source = np.concatenate(parts)
    lengths = lengths.reshape(-1)
    offsets = np.cumsum(lengths) - lengths  # where each segment begins in the output
    gather = np.repeat(starts.reshape(-1) - offsets, lengths)
    gather += _iota(len(gather))
    return np.take(source, gather)  # faster than source[gather]


_IOTA = [np.arange(0, dtype=np.int64)]


def _iota(size: int) -> np.ndarray:
    """``np.arange(size)``, a view of one array kept between blocks (filling a fresh one
    for every block took a third of the writing); safe in the writing threads."""
    iota = _IOTA[0]  # read once: another thread may replace it (with a longer one or not)
    if len(iota) < size:
        iota = np.arange(max(size, 1 << 20), dtype=np.int64)
        _IOTA[0] = iota
    return iota[:size]
