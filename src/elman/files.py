"""Writing files so that nothing is lost: atomic replacement, checked output paths, strict JSON.

Every file elman writes goes through :func:`atomic_open` (or its shortcuts): the content goes to
a temporary file in the same folder, is flushed and fsynced, and is renamed over the target, and
the folder is fsynced; a crash at any moment leaves the old file or the new one, never a torn
one. A crash can leave the temporary file (``.NAME.XXXX.tmp``) behind;
:func:`remove_temporaries` clears them when a run starts again.

Output paths are checked before the work that fills them (:func:`check_writable`), so a
read-only folder is one line at the start, not a traceback after an hour of training.

JSON is written strictly (:func:`write_json`): a non-finite number becomes ``null``, never the
``NaN`` literal that other JSON readers refuse. ``metrics.jsonl`` is appended one whole line at
a time and read back tolerating a torn last line (:func:`read_jsonl`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from elman.errors import ElmanError

TEMP_SUFFIX = ".tmp"
# The umask can only be read by setting it; done once, at import, before any thread is writing.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def os_error(path: str | Path, err: OSError, what: str = "cannot write") -> ElmanError:
    """One line naming ``path`` and the cause (read-only, not a folder, disk full …)."""
    causes = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder",
        errno.ENAMETOOLONG: "the name is too long",
    }
    cause = causes.get(err.errno or 0, err.strerror or str(err))
    return ElmanError(f"{path}: {what} ({cause})")


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` only when the block ends without error."""
    path = Path(path)
    binary = "b" in mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise os_error(path, err) from None
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.chmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise os_error(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _mode_for(path: Path) -> int:
    """The permissions the new file gets: the old file's, or those of a file created the usual
    way (0o666 less the umask); mkstemp's own 0o600 would hide an ARPA file or a README
    rewritten for others."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` by ``text`` (UTF-8), atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` by ``data``, atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(record: Any, indent: int | None = None) -> str:
    """Strict JSON: non-finite numbers become ``null``."""
    return json.dumps(finite(record), indent=indent, allow_nan=False)


def write_json(path: str | Path, record: Any) -> Path:
    """Replace ``path`` by ``record`` as indented strict JSON, atomically."""
    return write_text(path, dumps(record, indent=2) + "\n")


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append ``record`` as one strict JSON line, written whole with one call."""
    line = (dumps(record) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise os_error(path, err) from None
    try:
        os.write(fd, line)
    except OSError as err:
        raise os_error(path, err) from None
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> list[Any]:
    """The records of a JSON-lines file; a torn last line (a crash mid-append) is skipped."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    records = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if k >= len(lines) - 2:  # the last line, before or without its newline
                break
            raise ElmanError(f"{path}: line {k + 1} is not JSON") from None
    return records


def check_writable(path: str | Path, what: str = "output") -> None:
    """Stop now, in one line, when ``path`` (a file to write) could not be written later.

    The folder must exist or be creatable, be a folder, and accept a new file; ``path``
    itself must not be a folder. Nothing is left behind (a created folder stays).
    """
    path = Path(path)
    if path.is_dir():
        raise ElmanError(f"{what} {path}: it is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ElmanError(f"{what} {path}: {folder} is a file, not a folder") from None
    except OSError as err:
        raise os_error(path, err, f"cannot create the folder of the {what}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder)
    except OSError as err:
        raise os_error(path, err, f"cannot write the {what}") from None
    os.close(fd)
    os.unlink(tmp)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files an interrupted atomic write left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
