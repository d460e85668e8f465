"""Parallel corpora: aligned source and target lines, read exactly as they are in the files.

A parallel corpus is the named dataset ``multi30k`` (the raw, cased and untokenized
``raw/*.gz`` files under ``$ELMAN_DATA``, sha256-checked) or any folder holding, for the
direction ``SRC-TGT``, the files ``train.SRC``, ``train.TGT``, ``valid.SRC``, ``valid.TGT``,
``test.SRC`` and ``test.TGT`` (each may also be gzip-compressed, ``train.SRC.gz``).

Line i of a source file translates line i of its target file::

    train.de   Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.
    train.en   Two young, White males are outside near many bushes.

so two files of one split must have the same number of lines; if they do not, reading the split
is an ElmanError naming both files and their line counts (never a silent truncation). A line
is what lies between two ``"\\n"``; a last fragment after the final newline counts unless it is
empty, so the count is ``wc -l`` plus one for an unterminated last line.

Splits of ``multi30k``: train (29,000 pairs), val (1,014), test_2016_flickr (1,000),
test_2017_flickr (1,000), test_2017_mscoco (461), test_2018_flickr (1,071). The generic names
``valid`` and ``test`` stand for ``val`` and ``test_2016_flickr`` (the test set the literature
reports), so code written for train/valid/test runs on it unchanged. For a folder the splits are
train, valid and test (``val`` stands for ``valid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elman.data.datasets import DATASETS, check_file, data_root
from elman.data.text import decode_utf8, gunzip, read_bytes
from elman.errors import ElmanError

MULTI30K_SPLITS = (
    "train",
    "val",
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
)
MULTI30K_DIRECTIONS = ("de-en", "en-de")
FOLDER_SPLITS = ("train", "valid", "test")
_DIRECTION = re.compile(r"^([A-Za-z_]+)-([A-Za-z_]+)$")


def parse_direction(direction: str) -> tuple[str, str]:
    """``"de-en"`` -> ``("de", "en")``: source and target language codes."""
    match = _DIRECTION.match(direction)
    if match is None or match.group(1) == match.group(2):
        raise ElmanError(
            f"direction {direction!r}: expected SRC-TGT with two different language codes, "
            "e.g. de-en or en-de"
        )
    return match.group(1), match.group(2)


def read_lines_exact(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (gzip-compressed if it ends in ``.gz``), without ``"\\n"``.

    Empty lines are kept (they are sentences too); only an empty fragment after the final
    newline is dropped. A missing, empty, corrupt or non-UTF-8 file is an ElmanError.
    """
    lines = decode_utf8(gunzip(read_bytes(path), path), path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


@dataclass
class ParallelCorpus:
    """The splits of a parallel corpus in one direction, each read once on demand.

    Attributes:
        name: ``multi30k`` or the folder of a custom corpus.
        src_lang, tgt_lang: the language codes of the direction (``de``, ``en``).
        files: split -> (source file, target file).
        aliases: other names of splits (``valid`` -> ``val``, ``test`` -> ``test_2016_flickr``).
    """

    name: str
    src_lang: str
    tgt_lang: str
    files: dict[str, tuple[Path, Path]]
    aliases: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict, repr=False)

    @property
    def direction(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def split_name(self, split: str) -> str:
        """The file name of ``split`` (aliases resolved); an unknown split is an ElmanError."""
        split = self.aliases.get(split, split)
        if split not in self.files:
            names = ", ".join([*self.files, *self.aliases])
            raise ElmanError(f"unknown split {split!r} of {self.name}; choose one of {names}")
        return split

    def pairs(self, split: str) -> tuple[list[str], list[str]]:
        """The source lines and the target lines of ``split``, aligned one to one."""
        split = self.split_name(split)
        if split not in self._cache:
            src_path, tgt_path = self.files[split]
            src, tgt = read_lines_exact(src_path), read_lines_exact(tgt_path)
            if len(src) != len(tgt):
                raise ElmanError(
                    f"parallel files differ in length: {src_path} has {len(src)} lines, "
                    f"{tgt_path} has {len(tgt)}; line i of one must translate line i of the "
                    "other (fix or re-fetch the files)"
                )
            self._cache[split] = (src, tgt)
        return self._cache[split]

    def source(self, split: str) -> list[str]:
        return self.pairs(split)[0]

    def target(self, split: str) -> list[str]:
        return self.pairs(split)[1]


def _named(name: str, direction: str, root: Path | None) -> ParallelCorpus:
    spec = DATASETS[name]
    if direction not in MULTI30K_DIRECTIONS:
        raise ElmanError(
            f"direction {direction!r} is not available for {name}; choose "
            f"{' or '.join(MULTI30K_DIRECTIONS)}"
        )
    src, tgt = parse_direction(direction)
    root = data_root() if root is None else Path(root)

    def path(split: str, lang: str) -> Path:
        role = f"raw/{split}.{lang}.gz"
        if role not in spec.files:
            raise ElmanError(f"dataset '{name}' has no file {role} (expected the Multi30k layout)")
        return check_file(spec.files[role], root, name)

    files = {s: (path(s, src), path(s, tgt)) for s in MULTI30K_SPLITS}
    aliases = {"valid": "val", "test": "test_2016_flickr"}
    return ParallelCorpus(name, src, tgt, files, aliases)


def _folder_file(folder: Path, split: str, lang: str) -> Path | None:
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _folder(folder: Path, direction: str) -> ParallelCorpus:
    src, tgt = parse_direction(direction)
    found: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for s in FOLDER_SPLITS:
        for lang in (src, tgt):
            path = _folder_file(folder, s, lang)
            if path is None:
                missing.append(f"{s}.{lang}")
            else:
                found[s, lang] = path
    if missing:
        raise ElmanError(
            f"{folder}: a parallel corpus folder for {direction} needs train, valid and test "
            f".{src}/.{tgt} files (optionally .gz); missing {', '.join(missing)}"
        )
    files = {s: (found[s, src], found[s, tgt]) for s in FOLDER_SPLITS}
    return ParallelCorpus(str(folder), src, tgt, files, {"val": "valid"})


def resolve_parallel(
    name_or_dir: str, direction: str = "de-en", *, root: Path | None = None
) -> ParallelCorpus:
    """The parallel corpus ``name_or_dir`` (a known name wins over a folder of that name)."""
    spec = DATASETS.get(name_or_dir)
    if spec is not None:
        if spec.task != "translation":
            raise ElmanError(
                f"dataset '{name_or_dir}' is a {spec.task} corpus, not a parallel one; "
                f"parallel datasets: {_known()}"
            )
        return _named(name_or_dir, direction, root)
    folder = Path(name_or_dir).expanduser()
    if folder.is_dir():
        return _folder(folder, direction)
    raise ElmanError(
        f"unknown parallel dataset {name_or_dir!r}; known: {_known()} (or a folder holding "
        "train/valid/test.SRC and .TGT files)"
    )


def _known() -> str:
    return ", ".join(n for n, s in DATASETS.items() if s.task == "translation")
