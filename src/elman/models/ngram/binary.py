"""Binary n-gram models: the tables of an :class:`NgramLM` as memory-mapped arrays.

An ARPA file is text that has to be parsed (the PTB 5-gram: seconds); this format holds the
same tables as the arrays the model scores with, so loading maps the file and reads a small
header (milliseconds): ``elman ngram binary MODEL.arpa MODEL.bin`` converts, like KenLM's
``build_binary``, and every command that reads an n-gram model takes either
(:func:`read_model`).

Layout, version 2 (all integers little-endian; offsets in bytes)::

    offset  size  content
    0       8     magic b"ELMANLM\\0"
    8       4     format version, uint32 (2)
    12      4     H, the header's length, uint32
    16      H     the header: a UTF-8 JSON object (below)
    16 + H        zero bytes up to P, the next multiple of 64 (the payload's start)
    P             the payload: the arrays, each starting at a multiple of 64 bytes from P
                  (so from the file's start), in this order, zero bytes between them:
                    vocab      the words joined by "\\n", UTF-8 (word i is unigram row i)
                    for n = 1 .. N:
                      keys{n}  int64 "<i8", counts[n-1] sorted keys context_row * V + word
                               (order 1 has none: its keys are 0 .. V-1)
                      index{n} int32 "<i4", the hash index of keys{n} (n >= 2; see
                               :mod:`elman.models.ngram.probing`): at least
                               ⌈1.5 counts[n-1]⌉ slots, the row of a key or -1 in each
                      logp{n}  float64 "<f8", counts[n-1] log10 probabilities
                      logbo{n} float64 "<f8", counts[n-1] log10 back-off weights (n < N)
    P + payload_bytes   the end of the file

The header holds ``order`` (N), ``vocab_size`` (V), ``counts`` (N n-gram counts, the first
V), ``dtypes`` (``{"keys": "<i8", "logp": "<f8", "logbo": "<f8", "index": "<i4"}``),
``arrays`` (each name above -> ``[offset from P, length in bytes]``), ``payload_bytes``,
``sha256`` (hex SHA-256 of the payload's ``payload_bytes`` bytes, padding included) and
``discounts`` (per order, as :meth:`NgramLM.build` found them; ``null`` for a non-finite one;
``[]`` from ARPA). An order may lack its ``index{n}`` (one of over 2^31 n-grams): it is then
searched in its sorted keys. Version 1 was the same without the indexes and without
``"index"`` in ``dtypes``; it is still read (and searched in the sorted keys).

With the indexes, scoring finds an n-gram with one or two reads of the table where binary
search in the keys takes log2(M): PTB test x 20 scores 1.5 times as fast in-process
(``benchmarks/ngram_binary.py``). They cost 4 bytes a slot: 14 of the PTB 5-gram's 61 MB.

Probabilities stay float64, as the model scores them: a binary model gives bit for bit the
log-probabilities, perplexities and samples of the model it was written from (an ARPA file
written by elman keeps every float64 too). float32, as KenLM stores them, was measured on the
PTB 5-gram: it changes the test perplexity by 8e-10 relative and would save 15 MB of what was
then a 47 MB file, but the model computes in float64, so loading would have to convert (copy)
the arrays that are otherwise only mapped, and results would no longer be bit-identical to the
ARPA model.

Reading (:func:`read_binary`) maps the file read-only and builds the arrays over the map
without copying them (``np.frombuffer``): loading costs the header and, with ``verify=True``
(the default), one SHA-256 pass over the payload. The PTB 5-gram (61 MB) loads in 0.038 s from
a file in the page cache, 0.036 s of it the checksum (``benchmarks/ngram_binary.py``); a
caller that trusts the file can skip it (``verify=False``, 2 ms).

The header is JSON, parsed and checked field by field; nothing in the file is ever run as
code. A file that is not this format (an ARPA file is named as one), of another version,
shorter or longer than its header says, with a malformed header or with a checksum that does
not match is refused in one line naming the file and the fix. The header is not under the
checksum: every number scoring uses (order, counts, offsets, lengths) is checked against the
others and the file's size; the discounts are only reported. A model file replaced while it
is mapped stays whole for the process that maps it, since elman writes files atomically
(:func:`elman.files.atomic_open`: a new file renamed over the old).
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from elman.errors import ElmanError
from elman.files import atomic_open, dumps, os_error
from elman.models.ngram import probing
from elman.models.ngram.arpa import read_arpa
from elman.models.ngram.model import NgramLM

MAGIC = b"ELMANLM\0"
VERSION = 2
READS = (1, 2)  # the versions read: 1 has no hash indexes
PREFIX = struct.Struct("<8sII")  # magic, version, header length
ALIGN = 64  # every array starts at a multiple of this (cache lines, SIMD loads)
DTYPES = {"keys": "<i8", "logp": "<f8", "logbo": "<f8", "index": "<i4"}
DTYPES_V1 = {"keys": "<i8", "logp": "<f8", "logbo": "<f8"}
COPY_BLOCK = 1 << 22  # bytes copied at a time from a streamed payload
REBUILD = "rebuild it with `elman ngram binary MODEL.arpa OUT`"


def _align(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


# --- writing -----------------------------------------------------------------------
def _arrays(lm: NgramLM) -> list[tuple[str, memoryview]]:
    """The payload's arrays in file order, as raw bytes (module docstring)."""
    out = [("vocab", vocab_bytes(lm.vocab))]
    for n in range(1, lm.order + 1):
        tables: list[tuple[str, np.ndarray | None]] = []
        if n > 1:
            index = lm.hash_index[n - 1]
            index = probing.build(lm.keys[n - 1]) if index is None else index
            tables += [("keys", lm.keys[n - 1]), ("index", index)]
        tables += [("logp", lm.logp[n - 1])] + (
            [("logbo", lm.logbo[n - 1])] if n < lm.order else []
        )
        for kind, table in tables:
            if table is not None:
                out.append((f"{kind}{n}", raw(table, kind)))
    return out


def raw(values: np.ndarray, kind: str) -> memoryview:
    """``values`` as the bytes of an array of ``kind`` (``DTYPES``)."""
    return np.ascontiguousarray(values, dtype=DTYPES[kind]).reshape(-1).view(np.uint8).data


def _pieces(arrays: list[tuple[str, memoryview]]) -> Iterator[bytes | memoryview]:
    """The payload's bytes in order: each array after the zeros that align it."""
    at = 0
    for _, data in arrays:
        yield bytes(_align(at) - at)
        yield data
        at = _align(at) + len(data)


class Payload:
    """The payload as its arrays are added in file order: each one's place is recorded and
    every byte hashed, and written to ``f`` (None: only measured and hashed)."""

    def __init__(self, f: IO[bytes] | None = None) -> None:
        self.f, self.at = f, 0
        self.table: dict[str, list[int]] = {}
        self.digest = hashlib.sha256()

    def add(self, name: str, blocks: Iterable[bytes | memoryview]) -> None:
        """The array ``name``, given as its bytes in one or more blocks."""
        start = _align(self.at)
        self._write(bytes(start - self.at))
        length = 0
        for block in blocks:
            self._write(block)
            length += len(block)
        self.table[name] = [start, length]
        self.at = start + length

    def _write(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        if self.f is not None:
            self.f.write(data)

    def header(
        self, order: int, vocab_size: int, counts: list[int], discounts: list[tuple[float, ...]]
    ) -> bytes:
        """The file's prefix, header and the zeros up to the payload's start."""
        header = {
            "order": order,
            "vocab_size": vocab_size,
            "counts": counts,
            "dtypes": DTYPES,
            "arrays": self.table,
            "payload_bytes": self.at,
            "sha256": self.digest.hexdigest(),
            "discounts": [list(d) for d in discounts],
        }
        head = dumps(header).encode("utf-8")
        start = _align(PREFIX.size + len(head))
        padding = bytes(start - PREFIX.size - len(head))
        return PREFIX.pack(MAGIC, VERSION, len(head)) + head + padding


def vocab_bytes(vocab: list[str]) -> memoryview:
    """The ``vocab`` array of the payload: the words joined by newlines, UTF-8."""
    if any("\n" in w for w in vocab):
        raise ElmanError("a word of the model contains a newline; it cannot be stored")
    return memoryview("\n".join(vocab).encode("utf-8"))


def write_binary(lm: NgramLM, path: str | Path) -> int:
    """Write ``lm`` to ``path`` in the binary format (module docstring), atomically: ``path``
    is replaced only once the whole file is on disk.  Returns the file's size in bytes."""
    arrays = _arrays(lm)
    payload = Payload()
    for name, data in arrays:
        payload.add(name, [data])
    head = payload.header(lm.order, lm.vocab_size, lm.counts(), lm.discounts)
    with atomic_open(path, "wb") as f:
        f.write(head)
        for piece in _pieces(arrays):
            f.write(piece)
    return len(head) + payload.at


class StreamedBinary:
    """The binary format written one array at a time, for a model estimated order by order
    and never held whole (:mod:`elman.models.ngram.estimation`).  The header, which holds
    the payload's checksum and the discounts, is known only at the end, so the payload goes
    to a temporary file in ``temp_dir`` first; :meth:`finish` writes ``path`` atomically,
    the header and then the payload copied after it."""

    def __init__(self, path: str | Path, temp_dir: str | Path | None = None) -> None:
        self.path = path
        try:
            self.file = tempfile.TemporaryFile(prefix="elman-ngram-", dir=temp_dir)
        except OSError as err:
            raise os_error(Path(temp_dir or tempfile.gettempdir()), err) from None
        self.payload = Payload(self.file)

    def finish(
        self, order: int, vocab_size: int, counts: list[int], discounts: list[tuple[float, ...]]
    ) -> int:
        """Write the file; returns its size in bytes."""
        head = self.payload.header(order, vocab_size, counts, discounts)
        self.file.seek(0)
        with atomic_open(self.path, "wb") as f:
            f.write(head)
            shutil.copyfileobj(self.file, f, COPY_BLOCK)
        return len(head) + self.payload.at

    def close(self) -> None:
        self.file.close()


# --- reading -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Header:
    """The checked header of a binary model file."""

    order: int
    vocab_size: int
    counts: list[int]
    arrays: dict[str, tuple[int, int]]  # name -> (offset from the payload's start, bytes)
    payload_bytes: int
    sha256: str
    discounts: list[tuple[float, ...]]


def _head(path: str | Path, size: int = 1024) -> bytes:
    """The first ``size`` bytes of ``path``; none when it cannot be read (the reader says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def is_binary(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts with this format's magic bytes."""
    return _head(path, len(MAGIC)) == MAGIC


def read_model(path: str | Path, *, verify: bool = True) -> NgramLM:
    """The n-gram model in ``path``: a binary model (by its magic bytes, :func:`read_binary`),
    else an ARPA file (:func:`~elman.models.ngram.arpa.read_arpa`)."""
    if is_binary(path):
        return read_binary(path, verify=verify)
    if b"\0" in _head(path):  # never in text
        raise ElmanError(
            f"{path}: neither an ARPA file nor an elman binary n-gram model (no "
            f"{MAGIC[:-1].decode()} magic at its start); give one of those"
        )
    return read_arpa(path)


def read_binary(path: str | Path, *, verify: bool = True) -> NgramLM:
    """Map the binary model ``path`` (module docstring) into an :class:`NgramLM` whose arrays
    are views of the read-only map, not copies.  ``verify`` checks the payload's SHA-256
    (one pass over the file); without it a damaged payload scores silently wrong."""
    mm = _map(path)
    version, length = PREFIX.unpack_from(mm)[1:]
    if PREFIX.size + length > len(mm):
        raise _truncated(path, len(mm), PREFIX.size + length)
    h = _parse_header(path, mm[PREFIX.size : PREFIX.size + length], version)
    start = _align(PREFIX.size + length)
    if len(mm) != start + h.payload_bytes:
        if len(mm) < start + h.payload_bytes:
            raise _truncated(path, len(mm), start + h.payload_bytes)
        raise ElmanError(
            f"{path}: {len(mm) - start - h.payload_bytes} bytes more than its header says; "
            f"the file is damaged or was not written by elman: {REBUILD}"
        )
    payload = memoryview(mm)[start:]
    if verify:
        _check_sum(path, payload, h.sha256)
    return _model(path, payload, h)


def _map(path: str | Path) -> mmap.mmap:
    """``path`` mapped read-only, after its magic and version are checked."""
    try:
        with open(path, "rb") as f:
            head = f.read(PREFIX.size)
            _check_prefix(path, head, f.read(1024) if head[: len(MAGIC)] != MAGIC else b"")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ElmanError(f"{path}: no such file; check the path") from None
    except OSError as err:
        raise os_error(path, err, "cannot read") from None


def _check_prefix(path: str | Path, head: bytes, more: bytes) -> None:
    """Refuse a file that is not this format (``more``: its next bytes) or another version."""
    magic = head[: len(MAGIC)]
    if magic != MAGIC:
        if len(head) < len(MAGIC) and MAGIC.startswith(magic) and magic:
            raise _truncated(path, len(head), PREFIX.size)
        if (head + more).lstrip().startswith(b"\\data\\"):
            raise ElmanError(
                f"{path}: an ARPA text file, not an elman binary n-gram model; read it as ARPA "
                f"(elman ngram eval takes both) or convert it: elman ngram binary {path} OUT"
            )
        raise ElmanError(
            f"{path}: not an elman binary n-gram model (no {MAGIC[:-1].decode()} magic at its "
            "start); give a file written by `elman ngram binary` or an ARPA file"
        )
    if len(head) < PREFIX.size:
        raise _truncated(path, len(head), PREFIX.size)
    version = PREFIX.unpack(head)[1]
    if version not in READS:
        raise ElmanError(
            f"{path}: written by format version {version}; this elman reads "
            f"{' and '.join(map(str, READS))}: rebuild it with elman ngram binary from its "
            "ARPA file"
        )


def _truncated(path: str | Path, size: int, expected: int) -> ElmanError:
    return ElmanError(
        f"{path}: truncated ({size} of {expected} bytes); the write or the copy was cut short: "
        f"copy it again or {REBUILD}"
    )


def _malformed(path: str | Path, what: str) -> ElmanError:
    return ElmanError(
        f"{path}: malformed header ({what}); the file is damaged or was not written by elman: "
        f"{REBUILD}"
    )


def _check_sum(path: str | Path, payload: memoryview, expected: str) -> None:
    found = hashlib.sha256(payload).hexdigest()
    if found != expected:
        raise ElmanError(
            f"{path}: checksum mismatch (SHA-256 of the arrays {found[:12]}…, the header says "
            f"{expected[:12]}…); the file is damaged: copy it again or {REBUILD}"
        )


# --- the header, field by field --------------------------------------------------------
def _parse_header(path: str | Path, raw: bytes, version: int = VERSION) -> _Header:
    try:
        h = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed(path, "not UTF-8 JSON") from None
    if not isinstance(h, dict):
        raise _malformed(path, "not a JSON object")
    order, V = _integer(path, h, "order", 1), _integer(path, h, "vocab_size", 1)
    counts = h.get("counts")
    if not (isinstance(counts, list) and len(counts) == order and counts[0] == V) or not all(
        type(c) is int and c >= 0 for c in counts
    ):
        raise _malformed(path, f"counts must be {order} n-gram counts, the first {V}")
    dtypes = DTYPES if version > 1 else DTYPES_V1
    if h.get("dtypes") != dtypes:
        raise _malformed(path, f"dtypes {h.get('dtypes')!r}, expected {dtypes}")
    sha = h.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64):
        raise _malformed(path, "sha256 must be 64 hex digits")
    payload = _integer(path, h, "payload_bytes", 0)
    return _Header(
        order=order,
        vocab_size=V,
        counts=counts,
        arrays=_array_table(path, h.get("arrays"), counts, payload, indexed=version > 1),
        payload_bytes=payload,
        sha256=sha,
        discounts=_discounts(path, h.get("discounts"), order),
    )


def _integer(path: str | Path, h: dict, name: str, least: int) -> int:
    value = h.get(name)
    if type(value) is not int or value < least:
        raise _malformed(path, f"{name} must be an integer >= {least}, got {value!r}")
    return value


def _expected_sizes(counts: list[int]) -> dict[str, int | None]:
    """Each array's name -> its length in bytes (None: the vocabulary, any length)."""
    sizes: dict[str, int | None] = {"vocab": None}
    for n, count in enumerate(counts, start=1):
        if n > 1:
            sizes[f"keys{n}"] = 8 * count
        sizes[f"logp{n}"] = 8 * count
        if n < len(counts):
            sizes[f"logbo{n}"] = 8 * count
    return sizes


def _array_table(
    path: str | Path, table: Any, counts: list[int], payload: int, indexed: bool = True
) -> dict:
    """The header's ``arrays``, checked: every array the counts call for (and, when
    ``indexed``, any hash indexes), aligned, of its size, inside the payload."""
    sizes = _expected_sizes(counts)
    optional = {f"index{n}": counts[n - 1] for n in range(2, len(counts) + 1)} if indexed else {}
    if not isinstance(table, dict) or not set(sizes) <= set(table) <= set(sizes) | set(optional):
        extra = f" and any of {', '.join(optional)}" if optional else ""
        raise _malformed(path, f"arrays must be {', '.join(sizes)}{extra}")
    out = {}
    for name in table:
        entry = table[name]
        ok = isinstance(entry, list) and len(entry) == 2 and all(type(x) is int for x in entry)
        if not ok or entry[0] < 0 or entry[0] % ALIGN or entry[0] + entry[1] > payload:
            raise _malformed(path, f"{name} at {entry!r} is not an aligned part of the payload")
        size = sizes.get(name)
        if size is not None and entry[1] != size:
            raise _malformed(path, f"{name} has {entry[1]} bytes, its count calls for {size}")
        if name in optional and not (
            entry[1] % 4 == 0 and probing.valid_size(optional[name], entry[1] // 4)
        ):
            raise _malformed(path, f"{name} has {entry[1]} bytes, not an index of its count")
        out[name] = (entry[0], entry[1])
    return out


def _discounts(path: str | Path, value: Any, order: int) -> list[tuple[float, ...]]:
    """The header's discounts (per order, or none at all); null stands for NaN."""
    if value == []:
        return []
    ok = isinstance(value, list) and len(value) == order
    ok = ok and all(isinstance(d, list) for d in value)
    ok = ok and all(x is None or type(x) in (int, float) for d in value for x in d)
    if not ok:
        raise _malformed(path, f"discounts must be {order} lists of numbers")
    return [tuple(math.nan if x is None else float(x) for x in d) for d in value]


def _model(path: str | Path, payload: memoryview, h: _Header) -> NgramLM:
    """The model over the payload's bytes (views, no copies)."""

    def array(name: str, dtype: str) -> np.ndarray:
        offset, size = h.arrays[name]
        return np.frombuffer(payload, dtype=dtype, count=size // int(dtype[-1]), offset=offset)

    offset, size = h.arrays["vocab"]
    try:
        vocab = bytes(payload[offset : offset + size]).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise _malformed(path, "the vocabulary is not UTF-8") from None
    if len(vocab) != h.vocab_size:
        raise _malformed(path, f"{len(vocab)} words in the vocabulary, vocab_size {h.vocab_size}")
    N = h.order
    keys = [array(f"keys{n}", DTYPES["keys"]) for n in range(2, N + 1)]
    logp = [array(f"logp{n}", DTYPES["logp"]) for n in range(1, N + 1)]
    logbo = [array(f"logbo{n}", DTYPES["logbo"]) for n in range(1, N)]
    index = [
        array(f"index{n}", DTYPES["index"]) if f"index{n}" in h.arrays else None
        for n in range(2, N + 1)
    ]
    lm = NgramLM(vocab, keys, logp, logbo, index)
    lm.discounts = h.discounts
    return lm
