"""`elman data list` and `elman data download NAME`: what corpora are here, and fetching them.

Both are also Python functions: :func:`list_datasets` returns one record per dataset and
:func:`download` fetches a dataset's files into the data root, checking each sha256 and
writing it atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from elman.data import datasets
from elman.data.datasets import SPLITS, FileSpec, data_root, file_status, resolve
from elman.errors import ElmanError


@dataclass
class DatasetInfo:
    """What ``elman data list`` shows for one dataset."""

    name: str
    task: str
    level: str
    status: str  # "present", "missing" (some file absent) or "corrupt" (some file differs)
    path: Path
    files: dict[str, str]  # relpath -> "present" / "missing" / "corrupt"
    tokens: dict[str, int] = field(default_factory=dict)  # split -> count, when asked for


def _folder(name: str, root: Path) -> Path:
    relpaths = [f.relpath for f in datasets.DATASETS[name].files.values()]
    return root / os.path.commonpath(relpaths) if len(relpaths) > 1 else root / relpaths[0]


def list_datasets(root: str | Path | None = None, *, counts: bool = False) -> list[DatasetInfo]:
    """The state of every named dataset under ``root`` (default: the data root).

    With ``counts=True``, the token counts of the present language-model datasets under
    elman's token convention (a few seconds: every file is read and tokenized).
    """
    root = data_root() if root is None else Path(root).expanduser()
    infos = []
    for name, spec in datasets.DATASETS.items():
        files = {f.relpath: file_status(f, root) for f in spec.files.values()}
        states = set(files.values())
        status = (
            "missing" if "missing" in states else "corrupt" if "corrupt" in states else "present"
        )
        info = DatasetInfo(name, spec.task, spec.level, status, _folder(name, root), files)
        if counts and status == "present" and spec.task == "lm":
            ds = resolve(name, root=root)
            info.tokens = {s: len(ds.tokens(s)) for s in SPLITS}
        infos.append(info)
    return infos


def _fetch(spec: FileSpec, root: Path, name: str) -> Path:
    """Download one file into place; sha256 verified before the atomic rename."""
    import urllib.error
    import urllib.request

    path = root / spec.relpath
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise ElmanError(
            f"{path.parent}: cannot write there ({err.strerror or err}); "
            "choose another root with --root DIR or ELMAN_DATA"
        ) from None
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(spec.url, timeout=60) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", None) or err
                raise ElmanError(
                    f"could not download {spec.url} ({reason}); check the network, or fetch "
                    f"the file by hand and put it at {path}"
                ) from None
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != spec.sha256:
            raise ElmanError(
                f"{spec.url}: downloaded file has sha256 {h.hexdigest()}, expected sha256 "
                f"{spec.sha256} of {spec.relpath}; the upstream copy changed, get the original "
                f"file of dataset '{name}' and put it at {path}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def download(name: str, root: str | Path | None = None, *, quiet: bool = False) -> list[Path]:
    """Fetch the files of dataset ``name`` into ``root`` (default: the data root).

    Files already present with the right sha256 are kept; the others are downloaded from
    their canonical location, verified and moved into place atomically.  Returns the paths.
    """
    if name not in datasets.DATASETS:
        raise ElmanError(f"unknown dataset {name!r}; known: {', '.join(datasets.DATASETS)}")
    root = data_root() if root is None else Path(root).expanduser()
    paths = []
    for spec in datasets.DATASETS[name].files.values():
        path = root / spec.relpath
        if file_status(spec, root) == "present":
            if not quiet:
                print(f"ok          {path}")
        else:
            if not quiet:
                print(f"downloading {spec.url}", flush=True)
            _fetch(spec, root, name)
            if not quiet:
                print(f"saved       {path}")
        paths.append(path)
    return paths


def _list(args: argparse.Namespace) -> int:
    root = data_root() if args.root is None else Path(args.root).expanduser()
    infos = list_datasets(root, counts=args.counts)
    source = "--root" if args.root else "ELMAN_DATA" if os.environ.get("ELMAN_DATA") else "default"
    print(f"data root: {root} ({source})")
    header = f"{'name':<16} {'task':<12} {'level':<6} {'status':<8}"
    if args.counts:
        header += f" {'tokens train / valid / test':<32}"
    print(header + " path")
    for info in infos:
        line = f"{info.name:<16} {info.task:<12} {info.level:<6} {info.status:<8}"
        if args.counts:
            counts = " / ".join(f"{info.tokens[s]:,}" for s in SPLITS) if info.tokens else "-"
            line += f" {counts:<32}"
        print(f"{line} {info.path}")
    absent = [i.name for i in infos if i.status != "present"]
    if absent:
        print(f"get one with `elman data download NAME` (not present: {', '.join(absent)})")
    return 0


def _download(args: argparse.Namespace) -> int:
    download(args.name, args.root)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list and download the corpora")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="show each named dataset: present, missing or corrupt")
    p.add_argument("--root", help="data root (default: $ELMAN_DATA or ~/.cache/elman)")
    p.add_argument("--counts", action="store_true", help="also count tokens (a few seconds)")
    p.set_defaults(func=_list)

    p = sub.add_parser("download", help="fetch a named dataset into the data root")
    p.add_argument("name", help=f"one of: {', '.join(datasets.DATASETS)}")
    p.add_argument("--root", help="data root (default: $ELMAN_DATA or ~/.cache/elman)")
    p.set_defaults(func=_download)
