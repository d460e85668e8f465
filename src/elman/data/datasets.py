"""The named corpora, where they live, how they are checked, and how they become tokens.

A dataset is a name from :data:`DATASETS` (files under :func:`data_root`, each checked
against its recorded sha256; the table itself is ``datasets.json`` next to this module, read
by :func:`load_table`), any directory holding ``train.txt``, ``valid.txt`` and ``test.txt``,
or one text file of your own (not checked). One file is cut into the three splits in order:
the first 90% of its lines train, the next 5% valid, the last 5% test (boundaries at
floor(0.90 n) and floor(0.95 n) lines; characters instead of lines at the character level),
unless explicit ``valid``/``test`` files are given, when the whole file trains.
:func:`resolve` turns any of them into a :class:`Dataset`, whose :meth:`Dataset.tokens` is THE
token convention behind every perplexity elman reports (docs/data.md):

- word level (``ptb``, ``wikitext-2``, custom directories): each line's
  whitespace-separated words followed by ``<eos>``; a blank line is just ``<eos>``.
- ``ptb-char``: the same rule on ``ptb.char.*.txt``, whose lines are space-separated
  characters with ``_`` between words, so a line's symbols followed by ``<eos>``.
- ``tinyshakespeare`` (and custom directories with ``level="char"``): every character,
  ``"\\n"`` included, is a token; there is no ``<eos>``.  The single file ``input.txt``
  is split in order by characters: the first 90% train, the next 5% valid, the last 5%
  test (boundaries at floor(0.90 n) and floor(0.95 n)).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from elman.data.specials import EOS, UNK
from elman.data.text import read_text, split_lines
from elman.errors import ElmanError

SPLITS = ("train", "valid", "test")
LEVELS = ("word", "char")
TASKS = ("lm", "translation", "tagger")  # the recipe's task names
TOKENIZERS = ("whitespace", "characters")
TABLE = Path(__file__).with_name("datasets.json")  # the table, shipped as package data


def data_root() -> Path:
    """The folder holding the named corpora: ``$ELMAN_DATA``, default ``~/.cache/elman``."""
    root = os.environ.get("ELMAN_DATA") or "~/.cache/elman"
    return Path(root).expanduser()


# --- the table ------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSpec:
    """One file of a named dataset: where it goes under the root, what it must hash to,
    and the canonical place to download it from."""

    relpath: str
    size: int
    sha256: str
    url: str


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    ``files`` maps a role to its file; ``splits`` maps train/valid/test to a role (empty
    for corpora that are not language-model text, e.g. parallel or tagged data, listed
    only for ``elman data list`` / ``download``).  ``fractions`` is set when one file is
    cut into the three splits by character position.
    """

    name: str
    task: str  # "lm", "translation" or "tagger"
    level: str  # "word" or "char"
    tokenizer: str  # "whitespace" (words + <eos> per line) or "characters"
    description: str
    origin: str  # where the data comes from, for people
    files: dict[str, FileSpec]
    splits: dict[str, str] = field(default_factory=dict)
    fractions: tuple[float, float, float] | None = None


def _keys(obj: object, where: str, cls: type, skip: tuple[str, ...] = ()) -> dict:
    """``obj`` as a dict whose keys are the fields of dataclass ``cls`` (minus ``skip``):
    every field without a default present, no other key."""
    if not isinstance(obj, dict):
        raise ElmanError(f"{where}: expected an object, got {type(obj).__name__}")
    names = [f.name for f in fields(cls) if f.name not in skip]
    unknown = [k for k in obj if k not in names]
    if unknown:
        raise ElmanError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(names)}")
    required = [f.name for f in fields(cls) if f.name in names and _no_default(f)]
    missing = [k for k in required if k not in obj]
    if missing:
        raise ElmanError(f"{where}: missing key {missing[0]!r}")
    return obj


def _no_default(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


_JSON_TYPE = {str: "string", int: "integer", dict: "object"}


def _check(value: Any, kind: type, where: str, key: str) -> Any:
    """``value`` if it is a ``kind`` (a bool is no int here), else an ElmanError."""
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ElmanError(f"{where}: {key} must be a JSON {_JSON_TYPE[kind]}, got {value!r}")
    return value


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _file(entry: object, where: str) -> FileSpec:
    e = _keys(entry, where, FileSpec)
    for key in ("relpath", "sha256", "url"):
        _check(e[key], str, where, key)
    return FileSpec(e["relpath"], _check(e["size"], int, where, "size"), e["sha256"], e["url"])


def _dataset(name: str, entry: object, where: str) -> DatasetSpec:
    e = _keys(entry, where, DatasetSpec, skip=("name",))
    for key, choices in (("task", TASKS), ("level", LEVELS), ("tokenizer", TOKENIZERS)):
        if e[key] not in choices:
            raise ElmanError(f"{where}: {key} {e[key]!r} is not one of {', '.join(choices)}")
    for key in ("description", "origin"):
        _check(e[key], str, where, key)
    files = {
        role: _file(f, f"{where}, file {role!r}")
        for role, f in _check(e["files"], dict, where, "files").items()
    }
    splits = _check(e.get("splits", {}), dict, where, "splits")
    for split, role in splits.items():
        if split not in SPLITS or role not in files:
            raise ElmanError(
                f"{where}: splits maps {split!r} to {role!r}; expected one of "
                f"{', '.join(SPLITS)} mapped to one of its files ({', '.join(files)})"
            )
    fractions = e.get("fractions")
    if fractions is not None:
        ok = isinstance(fractions, list) and len(fractions) == 3
        if not ok or not all(_is_number(x) and x >= 0 for x in fractions):
            raise ElmanError(
                f"{where}: fractions must be three numbers >= 0 (train, valid, test), "
                f"got {fractions!r}"
            )
        fractions = (float(fractions[0]), float(fractions[1]), float(fractions[2]))
    return DatasetSpec(
        name=name,
        task=e["task"],
        level=e["level"],
        tokenizer=e["tokenizer"],
        description=e["description"],
        origin=e["origin"],
        files=files,
        splits=dict(splits),
        fractions=fractions,
    )


def load_table(path: str | Path = TABLE) -> dict[str, DatasetSpec]:
    """The dataset table in the JSON file ``path`` (default: ``datasets.json`` next to this
    module), as name -> :class:`DatasetSpec`.

    The file is one object mapping each name to an entry whose keys are the fields of
    :class:`DatasetSpec` but ``name`` (``splits`` and ``fractions`` may be left out);
    ``files`` maps a role to an object with the fields of :class:`FileSpec`.  Invalid
    JSON, an unknown or missing key, a value of the wrong type, or a split mapped to no
    file is an ElmanError naming the file and the entry.
    """
    path = Path(path)
    try:
        table = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ElmanError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(table, dict):
        raise ElmanError(f"{path}: expected an object mapping dataset names to entries")
    return {name: _dataset(name, e, f"{path}: dataset {name!r}") for name, e in table.items()}


DATASETS: dict[str, DatasetSpec] = load_table()


# --- checking files -----------------------------------------------------------------
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The sha256 of ``path``, hashed once per process (keyed by path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def file_status(spec: FileSpec, root: Path) -> str:
    """ "present", "missing" or "corrupt" (wrong size or sha256) for one file under ``root``."""
    path = root / spec.relpath
    if not path.is_file():
        return "missing"
    if path.stat().st_size != spec.size or sha256_of(path) != spec.sha256:
        return "corrupt"
    return "present"


def check_file(spec: FileSpec, root: Path, dataset: str) -> Path:
    """The path of ``spec`` under ``root``; a missing or corrupt file is a one-line ElmanError."""
    path = root / spec.relpath
    status = file_status(spec, root)
    if status == "missing":
        raise ElmanError(
            f"{path}: missing; dataset '{dataset}' expects {spec.relpath} under the data root "
            f"{root} (set ELMAN_DATA to change it); run `elman data download {dataset}` or fetch "
            f"it from {spec.url}"
        )
    if status == "corrupt":
        raise ElmanError(
            f"{path}: expected sha256 {spec.sha256} of {spec.relpath} (dataset '{dataset}'), "
            f"the file differs (corrupt or another version); run `elman data download {dataset}` "
            f"or fetch it from {spec.url}"
        )
    return path


# --- the dataset ----------------------------------------------------------------------
@dataclass
class Dataset:
    """A corpus ready to be tokenized: three splits, a level and a tokenization rule.

    Attributes:
        name: the dataset name, or the directory for a custom one.
        level: "word" or "char" (char: report bits per character).
        tokenizer: "whitespace" (each line's symbols, then ``<eos>``) or "characters"
            (every character, ``"\\n"`` included, no ``<eos>``).
        files: split -> file.
        fractions: for a single file cut into train/valid/test in order.
        cut_by: what the fractions count: ``"characters"`` or ``"lines"``.
    """

    name: str
    level: str
    tokenizer: str
    files: dict[str, Path]
    fractions: tuple[float, float, float] | None = None
    cut_by: str = "characters"

    @property
    def specials(self) -> tuple[str, ...]:
        """The special tokens a vocabulary of this dataset needs (for ``Vocabulary.build``)."""
        return (UNK, EOS) if self.tokenizer == "whitespace" else (UNK,)

    @property
    def start_token(self) -> str | None:
        """The token read before the first one (``<eos>``: as if after a line end), or None."""
        return EOS if self.tokenizer == "whitespace" else None

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ElmanError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")

    def path(self, split: str) -> Path:
        """The file holding ``split`` (for tinyshakespeare the one file of all three)."""
        self._check_split(split)
        return self.files[split]

    def text(self, split: str) -> str:
        """The text of ``split`` (for a cut file, its characters in the split's range)."""
        text = read_text(self.path(split))
        if self.fractions is None:
            return text
        units: list[str] | str = text if self.cut_by == "characters" else split_lines(text)
        n = len(units)
        # Integer boundaries floor(0.90 n), floor(0.95 n), computed exactly.
        a = n * round(self.fractions[0] * 100) // 100
        b = n * round((self.fractions[0] + self.fractions[1]) * 100) // 100
        part = {"train": units[:a], "valid": units[a:b], "test": units[b:]}[split]
        if not part:
            raise ElmanError(
                f"{self.path(split)}: too short to cut into train, valid and test (its {split} "
                f"part is empty); give more text, or a folder with train.txt, valid.txt, test.txt"
            )
        return part if isinstance(part, str) else "\n".join(part) + "\n"

    def lines(self, split: str) -> list[str]:
        """The lines of ``split``, without their ``"\\n"`` (for the n-gram models)."""
        return split_lines(self.text(split))

    def tokens(self, split: str) -> list[str]:
        """The token stream of ``split`` under elman's convention (module docstring)."""
        if self.tokenizer == "characters":
            return list(self.text(split))
        out: list[str] = []
        for line in self.lines(split):
            out.extend(line.split())
            out.append(EOS)
        if len(out) == out.count(EOS):  # nothing but empty lines: nothing to learn or score
            raise ElmanError(
                f"{self.path(split)}: the {split} text holds no words, only empty lines; "
                "give a corpus with text"
            )
        return out


def _known() -> str:
    return ", ".join(name for name, spec in DATASETS.items() if spec.task == "lm")


def resolve(
    name_or_dir: str,
    *,
    level: str | None = None,
    root: Path | None = None,
    valid: str | None = None,
    test: str | None = None,
) -> Dataset:
    """The dataset named ``name_or_dir`` (under ``root``, default :func:`data_root`), the
    directory ``name_or_dir`` holding train.txt, valid.txt and test.txt, or the text file
    ``name_or_dir`` (cut into the three splits, or with explicit ``valid`` and ``test`` files).

    A known name wins over a directory of the same name (write ``./ptb`` for the folder).
    Named datasets are checked (presence and sha256, hashed once per process); custom data is
    read as it is, word level unless ``level="char"``.
    """
    if level is not None and level not in LEVELS:
        raise ElmanError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    # "$ELMAN_DATA/multi30k/…" in a recipe reads as a shell would (~ is expanded further down)
    name_or_dir = os.path.expandvars(name_or_dir)
    valid, test = (None if f is None else os.path.expandvars(f) for f in (valid, test))
    spec = DATASETS.get(name_or_dir)
    if (valid is None) != (test is None):
        raise ElmanError("give both data.valid and data.test (files), or neither")
    if valid is not None and not Path(name_or_dir).expanduser().is_file():
        raise ElmanError(
            f"data.valid and data.test go with one training text file as data.dataset, "
            f"not {name_or_dir!r}"
        )
    if spec is not None:
        if spec.task != "lm":
            raise ElmanError(
                f"dataset '{name_or_dir}' is a {spec.task} corpus, not language-model text; "
                f"language-model datasets: {_known()}"
            )
        if level is not None and level != spec.level:
            raise ElmanError(
                f"dataset '{name_or_dir}' is {spec.level} level; level={level!r} applies only "
                "to a custom directory"
            )
        root = data_root() if root is None else Path(root)
        checked = {role: check_file(f, root, spec.name) for role, f in spec.files.items()}
        return Dataset(
            name=spec.name,
            level=spec.level,
            tokenizer=spec.tokenizer,
            files={split: checked[role] for split, role in spec.splits.items()},
            fractions=spec.fractions,
        )
    folder = Path(name_or_dir).expanduser()
    if folder.is_file():
        return _text_file(folder, level or "word", valid, test)
    if folder.is_dir():
        missing = [f"{s}.txt" for s in SPLITS if not (folder / f"{s}.txt").is_file()]
        if missing:
            raise ElmanError(
                f"{folder}: a dataset directory needs train.txt, valid.txt and test.txt; "
                f"missing {', '.join(missing)}"
            )
        level = level or "word"
        return Dataset(
            name=str(folder),
            level=level,
            tokenizer="whitespace" if level == "word" else "characters",
            files={s: folder / f"{s}.txt" for s in SPLITS},
        )
    raise ElmanError(
        f"unknown dataset {name_or_dir!r}; known: {_known()} "
        "(or a directory holding train.txt, valid.txt and test.txt, or one text file)"
    )


ONE_FILE_FRACTIONS = (0.9, 0.05, 0.05)  # train, valid, test of a single file (module docstring)


def _text_file(path: Path, level: str, valid: str | None, test: str | None) -> Dataset:
    """One text file of your own: cut in order, or the training text beside valid/test files."""
    tokenizer = "whitespace" if level == "word" else "characters"
    if valid is not None and test is not None:
        files = {"train": path, "valid": Path(valid).expanduser(), "test": Path(test).expanduser()}
        return Dataset(name=str(path), level=level, tokenizer=tokenizer, files=files)
    return Dataset(
        name=str(path),
        level=level,
        tokenizer=tokenizer,
        files={s: path for s in SPLITS},
        fractions=ONE_FILE_FRACTIONS,
        cut_by="lines" if level == "word" else "characters",
    )
