"""The one checkpoint module: atomic writes, checksummed content, safe loads.

A checkpoint is one file written with ``torch.save`` whose content is only tensors and plain
Python values (dicts, lists, tuples, str, bytes, numbers, None), so that it loads with
``weights_only=True`` and never runs code from the file. It is written atomically
(:func:`elman.files.atomic_open`: a temporary file in the same folder, fsync, rename), so a crash
never leaves a half-written checkpoint.

Content (every key a plain value)::

    format      "elman-checkpoint"
    version     2
    checksum    SHA-256 of everything else (below), 64 hex digits
    task        "lm", ...           which task of elman.tasks.table rebuilds the model
    recipe      the resolved recipe (dict of sections)
    vocab       Vocabulary.to_dict() (or a dict of them; translation: sentencepiece model bytes)
    level       language models: "word" or "char"
    model       the model's state_dict
    optimizer   the optimiser's state_dict
    trainer     epoch, step in epoch, global step, schedule state, early-stopping counters
    rng         torch (and CUDA) RNG states
    carry       the hidden state carried between BPTT batches (list of tensors) or None

**Integrity.** ``checksum`` is the SHA-256 of a canonical serialisation of every other entry
(:func:`content_digest`), so it does not depend on how torch lays out the zip file: a flipped bit
that still unpickles changes a tensor's bytes, a number, a vocabulary entry, a sentencepiece
model or the recipe, and so the digest. :func:`load_checkpoint` verifies it before anything is
built from the file; a mismatch is one line. The serialisation writes a type tag and a length
before each value (JSON has no bytes, int keys, tuples or infinities; optimiser states and the
trainer's ``best_loss = inf`` need them):

    None "N" · True "T" · False "F" · int "i" decimal ";" · float "f" 8 bytes IEEE-754 (LE)
    str "s" len ":" UTF-8 · bytes "b" len ":" raw · list "l" n ":" items · tuple "t" n ":" items
    dict "d" n ":" (key, value) pairs in the order of their keys' serialisations
    tensor "x" dtype ";" shape ";" then its elements' bytes in C order (as stored: little-endian)

Format version 1 (elman before checksums: every run folder written until then) has no
``checksum``; it still loads, with a warning that it was not verified. A resumed version-1 run
writes version-2 checkpoints from its first save on.

**Before a model is built** (:func:`build_checked`): the weights must be a table of tensors,
every floating-point weight finite (a diverged run's NaN would otherwise evaluate to ``ppl
nan``), and the recipe's model, built first on the ``meta`` device (shapes only, no memory),
must have exactly the stored weights' names and shapes: a crafted ``hidden_size = 10**7`` is
refused in one line instead of allocating petabytes.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import struct
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from elman.errors import ElmanError
from elman.files import atomic_open

FORMAT = "elman-checkpoint"
VERSION = 2
FIRST_CHECKSUMMED = 2  # format versions before this one have no checksum
HEX64 = re.compile(r"[0-9a-f]{64}")
LEVELS = ("word", "char")

M = TypeVar("M", bound=nn.Module)


# ------------------------------------------------------------------ the canonical digest
class NotPlain(TypeError):
    """A value the checkpoint format does not hold (neither a tensor nor a plain value)."""


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    if t.layout != torch.strided or t.is_quantized:
        raise NotPlain(f"a {t.layout} tensor")
    flat = t.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)  # (N,), C order
    return flat.view(torch.uint8).numpy().data  # a view of the bytes, no copy


def _scalar(value: Any) -> bytes | None:
    """The serialisation of a plain scalar (module docstring); None for anything else."""
    if value is None or isinstance(value, bool):
        return b"N" if value is None else b"T" if value else b"F"
    if isinstance(value, int):
        return b"i%d;" % value
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"s%d:" % len(data) + data
    if isinstance(value, bytes | bytearray):
        return b"b%d:" % len(value) + bytes(value)
    return None


def _feed(h: Any, value: Any) -> None:
    """Write the canonical serialisation of ``value`` into the hash ``h`` (module docstring)."""
    scalar = _scalar(value)
    if scalar is not None:
        h.update(scalar)
    elif isinstance(value, torch.Tensor):
        data = _tensor_bytes(value)
        h.update(b"x%s;%s;" % (str(value.dtype).encode(), str(tuple(value.shape)).encode()))
        h.update(data)
    elif isinstance(value, list | tuple):
        h.update(b"%s%d:" % (b"l" if isinstance(value, list) else b"t", len(value)))
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        _feed_dict(h, value)
    else:
        raise NotPlain(f"a value of type {type(value).__name__}")


def _feed_dict(h: Any, table: dict[Any, Any]) -> None:
    keyed = []
    for key, value in table.items():
        kh = _KeyBytes()
        _feed(kh, key)
        keyed.append((kh.data(), value))
    keyed.sort(key=lambda kv: kv[0])  # a fixed order, whatever order the dict was built in
    h.update(b"d%d:" % len(keyed))
    for key_bytes, value in keyed:
        h.update(key_bytes)
        _feed(h, value)


class _KeyBytes:
    """Collects a key's serialisation (keys are small: str or int)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, data: bytes | memoryview) -> None:
        self.parts.append(bytes(data))

    def data(self) -> bytes:
        return b"".join(self.parts)


def content_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical serialisation of ``payload`` without ``checksum``/``path``.

    Raises :class:`NotPlain` for a value the format does not hold.
    """
    h = hashlib.sha256()
    _feed_dict(h, {k: v for k, v in payload.items() if k not in ("checksum", "path")})
    return h.hexdigest()


# ------------------------------------------------------------------ saving and loading
def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` and its checksum to ``path`` atomically (temporary file, fsync,
    rename)."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["checksum"] = content_digest(payload)
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (then its ``best.pt``, else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ElmanError(
            f"run folder {path} holds no best.pt or last.pt; train a model into it first"
        )
    if not path.is_file():
        raise ElmanError(f"checkpoint {path} not found; give a .pt file or a run folder")
    return path


def _unreadable(path: Path, err: BaseException) -> ElmanError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, pickle.UnpicklingError):  # torch's text is a page on weights_only
        first = "it holds something other than tensors and plain values"
    return ElmanError(
        f"checkpoint {path} is truncated, corrupt or not an elman checkpoint ({first[:120]}); "
        "use another checkpoint (e.g. last.pt instead of best.pt) or retrain"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely and verify its checksum; a truncated, corrupt, altered or
    foreign file is an ElmanError naming it (module docstring)."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged zip or pickle fails in many ways: each is this file's
        raise _unreadable(path, err) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ElmanError(f"{path} is not an elman checkpoint (no '{FORMAT}' header)")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ElmanError(
            f"checkpoint {path} has no valid format version ({version!r}); it is corrupted: "
            "use last.pt/best.pt or retrain"
        )
    if version > VERSION:
        raise ElmanError(
            f"checkpoint {path} has format version {version}, newer than this elman "
            f"({VERSION}); upgrade elman"
        )
    verify_checksum(payload, path)
    payload["path"] = str(path)
    return payload


def verify_checksum(payload: dict[str, Any], path: Path) -> None:
    """Stop in one line when the content does not match its checksum (a version-1 checkpoint,
    which has none, loads with a warning)."""
    stored = payload.get("checksum")
    if stored is None and payload["version"] < FIRST_CHECKSUMMED:
        warnings.warn(
            f"checkpoint {path} has no checksum (format version {payload['version']}, written "
            "before elman checked them): loaded without an integrity check",
            stacklevel=3,
        )
        return
    corrupted = f"checkpoint {path} fails its checksum (corrupted); use last.pt/best.pt or retrain"
    if not isinstance(stored, str) or not HEX64.fullmatch(stored):
        raise ElmanError(corrupted)
    try:
        actual = content_digest(payload)
    except (NotPlain, RecursionError):
        raise ElmanError(corrupted) from None
    if actual != stored:
        raise ElmanError(corrupted)


# ------------------------------------------------------------------ what a model needs
def check_parts(payload: Mapping[str, Any], names: Sequence[str]) -> None:
    """Stop in one line when the entries ``names`` a model is rebuilt from are missing or of
    the wrong kind (``task`` a string, ``recipe``/``vocab``/``model`` tables, ``level`` word
    or char)."""
    path = payload.get("path", "?")
    for name in names:
        if name not in payload:
            raise ElmanError(
                f"checkpoint {path} has no '{name}' entry; it is incomplete or not from elman "
                "train: use another checkpoint or retrain"
            )
    kinds: dict[str, tuple[type, str]] = {
        "task": (str, "a task name"),
        "recipe": (dict, "a table of recipe sections"),
        "vocab": (dict, "a table"),
        "model": (dict, "a table of weights"),
    }
    for name, (kind, what) in kinds.items():
        if name in names and not isinstance(payload[name], kind):
            raise ElmanError(
                f"checkpoint {path}: '{name}' is a {type(payload[name]).__name__}, not {what}; "
                "the file is damaged or not from elman train"
            )
    if payload.get("level", "word") not in LEVELS:
        raise ElmanError(
            f"checkpoint {path}: level {payload.get('level')!r} unknown; valid: word, char"
        )


def model_weights(payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint's ``model`` entry, checked: names to tensors, every float finite."""
    path = payload.get("path", "?")
    weights = payload.get("model")
    if not isinstance(weights, dict):
        raise ElmanError(f"checkpoint {path} holds no table of model weights ('model')")
    for name, tensor in weights.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise ElmanError(
                f"checkpoint {path}: model entry {name!r} is a {type(tensor).__name__}, not a "
                "tensor; the file is damaged or not from elman train"
            )
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ElmanError(
                    f"checkpoint {path}: weight {name} holds {bad} non-finite value(s) (NaN or "
                    "inf), the run diverged before this save; use an earlier checkpoint or retrain"
                )
    return weights


def check_shapes(
    expected: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor], path: str
) -> None:
    """Stop in one line unless ``weights`` has exactly the names and shapes of ``expected``."""
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    wrong = [k for k in expected if k in weights and expected[k].shape != weights[k].shape]
    if not (missing or extra or wrong):
        return
    if wrong:
        k = wrong[0]
        first = (
            f"{k} is {tuple(weights[k].shape)} in the file, {tuple(expected[k].shape)} by the "
            "recipe"
        )
    elif missing:
        first = f"{missing[0]} is missing"
    else:
        first = f"{extra[0]} is not a weight of the recipe's model"
    count = len(missing) + len(extra) + len(wrong)
    raise ElmanError(
        f"checkpoint {path}: its weights do not fit its recipe's model ({first}"
        f"{f'; {count - 1} more' if count > 1 else ''}); the file is damaged or altered"
    )


def build_checked(build: Callable[[], M], payload: Mapping[str, Any]) -> M:
    """``build()`` holding the checkpoint's weights, checked before any weight is allocated.

    The weights are checked first (tensors, finite); then ``build()`` runs on the ``meta``
    device, where a model of any size takes no memory, and its names and shapes must equal the
    stored ones; only then is the model built for real and filled.
    """
    path = str(payload.get("path", "?"))
    weights = model_weights(payload)
    with torch.device("meta"):
        skeleton = build()
    check_shapes(skeleton.state_dict(), weights, path)
    del skeleton
    return _fill(build(), weights, path)


def _fill(model: M, weights: Mapping[str, torch.Tensor], path: str) -> M:
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ElmanError(
            f"checkpoint {path}: weights do not match its recipe's architecture "
            f"({str(err).splitlines()[0][:160]})"
        ) from None
    return model


def load_weights(model: M, payload: Mapping[str, Any]) -> M:
    """Put a checkpoint's weights into ``model`` (resume); non-finite weights, a shape or a
    name mismatch are an ElmanError."""
    return _fill(model, model_weights(payload), str(payload.get("path", "?")))
