"""The named corpora, where they live, how they are checked, and how they become tokens.

A dataset is either a name from :data:`DATASETS` (files under :func:`data_root`, each
checked against its recorded sha256) or any directory holding ``train.txt``,
``valid.txt`` and ``test.txt`` (not checked).  :func:`resolve` turns either into a
:class:`Dataset`, whose :meth:`Dataset.tokens` is THE token convention behind every
perplexity elman reports (docs/data.md):

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
import os
from dataclasses import dataclass, field
from pathlib import Path

from elman.data.specials import EOS, UNK
from elman.data.text import read_text, split_lines
from elman.errors import ElmanError

SPLITS = ("train", "valid", "test")
LEVELS = ("word", "char")


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
    task: str  # "lm", "translation" or "tagging"
    level: str  # "word" or "char"
    tokenizer: str  # "whitespace" (words + <eos> per line) or "characters"
    description: str
    origin: str  # where the data comes from, for people
    files: dict[str, FileSpec]
    splits: dict[str, str] = field(default_factory=dict)
    fractions: tuple[float, float, float] | None = None


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# Mikolov's simple-examples.tgz, mirrored file by file on GitHub (same git blobs).
_PTB_MIRROR = (
    "townie/PTB-dataset-from-Tomas-Mikolov-s-webpage",
    "06529ac968955ffc29a4668d68b93dadcfe55f2e",
)
_PTB_ORIGIN = "Mikolov's simple-examples.tgz, http://www.fit.vutbr.cz/~imikolov/rnnlm/"
_WT2 = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
_M30K = ("multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a")
_ATIS = ("UniversalDependencies/UD_English-Atis", "d1b43fe134cae17f65147e69accdf57c521d8af8")
_LINES = ("UniversalDependencies/UD_English-LinES", "30927439b9d383d21d0c86e647ba493cd89adf8c")


def _ptb(name: str, size: int, sha: str) -> FileSpec:
    return FileSpec(f"ptb/{name}", size, sha, _github(*_PTB_MIRROR, f"data/{name}"))


def _wt2(split: str, size: int, sha: str) -> FileSpec:
    path = f"word_language_model/data/wikitext-2/{split}.txt"
    return FileSpec(f"wikitext-2/{split}.txt", size, sha, _github(*_WT2, path))


def _m30k(sub: str, name: str, size: int, sha: str) -> FileSpec:
    return FileSpec(
        f"multi30k/{sub}/{name}", size, sha, _github(*_M30K, f"data/task1/{sub}/{name}")
    )


def _ud(mirror: tuple[str, str], folder: str, name: str, size: int, sha: str) -> FileSpec:
    return FileSpec(f"ud/{folder}/{name}", size, sha, _github(*mirror, name))


_IDENTITY = {s: s for s in SPLITS}

DATASETS: dict[str, DatasetSpec] = {
    "ptb": DatasetSpec(
        name="ptb",
        task="lm",
        level="word",
        tokenizer="whitespace",
        description="Penn Treebank, Mikolov's preprocessing (10k words, one sentence a line)",
        origin=_PTB_ORIGIN,
        files={
            "train": _ptb(
                "ptb.train.txt",
                5101618,
                "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
            ),
            "valid": _ptb(
                "ptb.valid.txt",
                399782,
                "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
            ),
            "test": _ptb(
                "ptb.test.txt",
                449945,
                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            ),
        },
        splits=_IDENTITY,
    ),
    "ptb-char": DatasetSpec(
        name="ptb-char",
        task="lm",
        level="char",
        tokenizer="whitespace",
        description="Penn Treebank as characters (space-separated, `_` between words)",
        origin=_PTB_ORIGIN,
        files={
            "train": _ptb(
                "ptb.char.train.txt",
                10034964,
                "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9",
            ),
            "valid": _ptb(
                "ptb.char.valid.txt",
                786084,
                "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
            ),
            "test": _ptb(
                "ptb.char.test.txt",
                884846,
                "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
            ),
        },
        splits=_IDENTITY,
    ),
    "wikitext-2": DatasetSpec(
        name="wikitext-2",
        task="lm",
        level="word",
        tokenizer="whitespace",
        description="WikiText-2 v1, tokenized (wiki.*.tokens), Merity et al. 2016",
        origin="pytorch/examples word_language_model/data/wikitext-2",
        files={
            "train": _wt2(
                "train",
                10797148,
                "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
            ),
            "valid": _wt2(
                "valid", 1121681, "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"
            ),
            "test": _wt2(
                "test", 1256449, "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"
            ),
        },
        splits=_IDENTITY,
    ),
    "tinyshakespeare": DatasetSpec(
        name="tinyshakespeare",
        task="lm",
        level="char",
        tokenizer="characters",
        description="Karpathy's char-rnn corpus; split 90/5/5 in order by characters",
        origin="karpathy/char-rnn data/tinyshakespeare/input.txt",
        files={
            "input": FileSpec(
                "tinyshakespeare/input.txt",
                1115394,
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            )
        },
        splits={s: "input" for s in SPLITS},
        fractions=(0.90, 0.05, 0.05),
    ),
    "multi30k": DatasetSpec(
        name="multi30k",
        task="translation",
        level="word",
        tokenizer="whitespace",
        description="Multi30k task 1, German-English (raw/*.gz; tok/: lowercased, Moses-tokenized)",
        origin="github.com/multi30k/dataset data/task1",
        files={
            f"{sub}/{n}": _m30k(sub, n, size, sha)
            for sub, n, size, sha in [
                (
                    "raw",
                    "train.de.gz",
                    637044,
                    "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
                ),
                (
                    "raw",
                    "train.en.gz",
                    568929,
                    "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
                ),
                (
                    "raw",
                    "val.de.gz",
                    24681,
                    "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
                ),
                (
                    "raw",
                    "val.en.gz",
                    21650,
                    "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
                ),
                (
                    "raw",
                    "test_2016_flickr.de.gz",
                    22890,
                    "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
                ),
                (
                    "raw",
                    "test_2016_flickr.en.gz",
                    21077,
                    "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
                ),
                (
                    "raw",
                    "test_2017_flickr.de.gz",
                    21471,
                    "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
                ),
                (
                    "raw",
                    "test_2017_flickr.en.gz",
                    19138,
                    "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
                ),
                (
                    "raw",
                    "test_2017_mscoco.de.gz",
                    10230,
                    "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
                ),
                (
                    "raw",
                    "test_2017_mscoco.en.gz",
                    8844,
                    "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
                ),
                (
                    "raw",
                    "test_2018_flickr.de.gz",
                    26461,
                    "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
                ),
                (
                    "raw",
                    "test_2018_flickr.en.gz",
                    23514,
                    "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
                ),
                (
                    "tok",
                    "train.lc.norm.tok.de",
                    2150008,
                    "cb5a23529b65ec2061f1dc446192a9c37382b63cc75f81a0be59d34894b3a505",
                ),
                (
                    "tok",
                    "train.lc.norm.tok.en",
                    1837696,
                    "08925f8e0572bcd5a006702fc5fe20e2d77c6917d4eebd576fc20de6693c2119",
                ),
                (
                    "tok",
                    "val.lc.norm.tok.de",
                    77273,
                    "97232bd273eceb7207f689527386a97e4be2616b18ada47576bdaf96c8ae1f00",
                ),
                (
                    "tok",
                    "val.lc.norm.tok.en",
                    64608,
                    "46573ce391ae227f1c72f873392436a20ef18e0a6d518098cfbd70b77c8572ec",
                ),
                (
                    "tok",
                    "test_2016_flickr.lc.norm.tok.de",
                    71917,
                    "c6a33d39d48f9f510de147651316cd9d918e09ad0219df734a2f16b6baccacc4",
                ),
                (
                    "tok",
                    "test_2016_flickr.lc.norm.tok.en",
                    63307,
                    "5b7f32627cf99eced828311b955dae9800bb52bc8b91cf8b6526829e605b29d2",
                ),
                (
                    "tok",
                    "test_2017_flickr.lc.norm.tok.de",
                    65228,
                    "02067e4a9402786a4fcb8c1b6f4307e4a5073ced64800abead5273b54f5f31f6",
                ),
                (
                    "tok",
                    "test_2017_flickr.lc.norm.tok.en",
                    56123,
                    "c9d1dfd7a26add989382e534af235af9f0f658b2a30e7eb0efdaf142496ee54f",
                ),
                (
                    "tok",
                    "test_2017_mscoco.lc.norm.tok.de",
                    30464,
                    "e2825990b8a4e5289d2cdba801d57c187810bab9b4f5d87a30c35800a0d871b6",
                ),
                (
                    "tok",
                    "test_2017_mscoco.lc.norm.tok.en",
                    25380,
                    "fe69ae004d71c42ead0301e70c57de5b1b6b5fb7f52210d42b22801e98e656f3",
                ),
                (
                    "tok",
                    "test_2018_flickr.lc.norm.tok.de",
                    82274,
                    "45ce6b121708adf538d3a8c71dc1acbcb1e0f2bca74ace8e58652f9ea5b96335",
                ),
                (
                    "tok",
                    "test_2018_flickr.lc.norm.tok.en",
                    71617,
                    "a66e25cbb8323d74a40873dcd222659f39e30ee7687a6ed5445833aed0673239",
                ),
            ]
        },
    ),
    "ud-en-lines": DatasetSpec(
        name="ud-en-lines",
        task="tagging",
        level="word",
        tokenizer="whitespace",
        description="Universal Dependencies English LinES (CoNLL-U), CC BY-NC-SA 4.0",
        origin="github.com/UniversalDependencies/UD_English-LinES",
        files={
            s: _ud(_LINES, "UD_English-LinES", f"en_lines-ud-{s}.conllu", size, sha)
            for s, size, sha in [
                (
                    "train",
                    3863453,
                    "27609ded288bf3704def21f18d227e3f40957b4981174411f6bed34acf3025b6",
                ),
                (
                    "dev",
                    1292371,
                    "3aabd1f843517fb615c8760c316a76125af2fff01c59b9a4049fe7c393891d2b",
                ),
                (
                    "test",
                    1194129,
                    "14c56b50da6d8876ce1fdaa9b19c2845dfff73ff57766ddc2f812d88612ce3a8",
                ),
            ]
        },
    ),
    "ud-en-atis": DatasetSpec(
        name="ud-en-atis",
        task="tagging",
        level="word",
        tokenizer="whitespace",
        description="Universal Dependencies English ATIS (CoNLL-U), CC BY-SA 4.0",
        origin="github.com/UniversalDependencies/UD_English-Atis",
        files={
            s: _ud(_ATIS, "UD_English-Atis", f"en_atis-ud-{s}.conllu", size, sha)
            for s, size, sha in [
                (
                    "train",
                    2719527,
                    "bf34cac75bf90593720fb7e06fcecb4f3fbaf325e7a2ceefbcca10771f56ac72",
                ),
                ("dev", 365475, "ba9ed59a6cf862c695043b64053194277023270ac46ad7b5182b90baee7cfee0"),
                (
                    "test",
                    367554,
                    "5d076b73ee57d30170f8e43434e14012f472d3af323b4f04d49a57d44c38b59a",
                ),
            ]
        },
    ),
}


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
        fractions: for a single file cut into train/valid/test by character position.
    """

    name: str
    level: str
    tokenizer: str
    files: dict[str, Path]
    fractions: tuple[float, float, float] | None = None

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
        n = len(text)
        # Integer boundaries floor(0.90 n), floor(0.95 n), computed exactly.
        a = n * round(self.fractions[0] * 100) // 100
        b = n * round((self.fractions[0] + self.fractions[1]) * 100) // 100
        return {"train": text[:a], "valid": text[a:b], "test": text[b:]}[split]

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
        return out


def _known() -> str:
    return ", ".join(name for name, spec in DATASETS.items() if spec.task == "lm")


def resolve(name_or_dir: str, *, level: str | None = None, root: Path | None = None) -> Dataset:
    """The dataset named ``name_or_dir`` (under ``root``, default :func:`data_root`), or the
    directory ``name_or_dir`` holding train.txt, valid.txt and test.txt.

    A known name wins over a directory of the same name (write ``./ptb`` for the folder).
    Named datasets are checked (presence and sha256, hashed once per process); a custom
    directory is read as it is, word level unless ``level="char"``.
    """
    if level is not None and level not in LEVELS:
        raise ElmanError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    spec = DATASETS.get(name_or_dir)
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
        "(or a directory holding train.txt, valid.txt and test.txt)"
    )
