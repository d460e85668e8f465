"""Tagged corpora and their batches: sentences of (word, tag), vocabularies, padded buckets.

A tagging corpus is a named dataset (``ud-en-lines``, ``ud-en-atis``; files under ELMAN_DATA,
sha256-checked) or any folder holding one ``*train*.conllu``, one ``*dev*.conllu`` and one
``*test*.conllu`` (the UD layout). Its splits are train, valid (the dev file) and test; the
tags are the words' UPOS (default) or XPOS column.

A batch holds B sentences padded to the longest, T words. Every word is looked up twice: in the
word vocabulary, and -- for the character encoder -- as a row of a small table of the batch's
distinct forms, so each form is spelt once per batch however often it occurs::

    sentences   "the cat sat"   "the dog"          B = 2, T = 3
    words       [[4, 9, 7],     [4, 12, 0]]        (B, T) word ids, 0 = <pad>
    forms       [[0, 1, 2],     [0, 3, 0]]         (B, T) rows of `chars`
    chars       t h e · / c a t / s a t / d o g    (U, C) = (4, 3) char ids, 0-padded
    tags        [[DET, NOUN, VERB], [DET, NOUN, -100]]   (B, T), -100 where padded
    lengths     [3, 2]

Training batches come from buckets of similar length (less padding, the same B sentences per
batch) in an order reshuffled at every epoch from ``seed`` and the epoch number alone, so an
interrupted run resumes on exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elman.data.batching import IGNORE_INDEX
from elman.data.conllu import TAG_COLUMNS, Sentence, read_conllu
from elman.data.datasets import DATASETS, check_file, data_root
from elman.data.vocabulary import UNK, Vocabulary
from elman.errors import ElmanError

PAD = "<pad>"
SPECIALS = (PAD, UNK)  # word and character vocabularies: <pad> = 0, <unk> = 1
SPLITS = ("train", "valid", "test")
_FILE_ROLES = {"train": "train", "valid": "dev", "test": "test"}


# --- corpora ---------------------------------------------------------------------------
@dataclass
class TaggedSentence:
    forms: list[str]
    tags: list[str]


class TaggingCorpus:
    """The three CoNLL-U files of a tagging corpus, read once each on demand.

    Attributes:
        name: the dataset name, or the folder of a custom one.
        files: split (train/valid/test) -> CoNLL-U file.
        column: ``"upos"`` or ``"xpos"``.
    """

    def __init__(self, name: str, files: dict[str, Path], column: str = "upos") -> None:
        if column not in TAG_COLUMNS:
            raise ElmanError(f"[data] column = {column!r} unknown; valid: {', '.join(TAG_COLUMNS)}")
        self.name, self.files, self.column = name, files, column
        self._cache: dict[str, list[TaggedSentence]] = {}

    def sentences(self, split: str) -> list[TaggedSentence]:
        """The words and tags of ``split``; an unset tag (``_``) on a word is an ElmanError."""
        if split not in SPLITS:
            raise ElmanError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split not in self._cache:
            self._cache[split] = [
                tagged(s, self.column, split) for s in read_conllu(self.files[split])
            ]
        return self._cache[split]


def tagged(sentence: Sentence, column: str, split: str = "train") -> TaggedSentence:
    """The words of ``sentence`` with their ``column`` tags, all of which must be set."""
    forms, tags = sentence.forms(), sentence.column(column)
    if "_" in tags:
        i = tags.index("_")
        raise ElmanError(
            f"{sentence.source}: the {column.upper()} column of word {i + 1} ({forms[i]!r}) is "
            f"empty (_) in the {split} file; a tagger needs every word tagged -- use a file "
            f"with {column.upper()} tags or set data.column to the other of upos/xpos"
        )
    return TaggedSentence(forms, tags)


def _find(folder: Path, role: str) -> Path:
    found = sorted(folder.glob(f"*{role}*.conllu"))
    if len(found) != 1:
        what = "none" if not found else ", ".join(p.name for p in found)
        raise ElmanError(
            f"{folder}: a tagging corpus folder needs exactly one *{role}*.conllu file; "
            f"found {what}"
        )
    return found[0]


def _known() -> str:
    return ", ".join(n for n, spec in DATASETS.items() if spec.task == "tagger")


def resolve_tagging(
    name_or_dir: str, column: str = "upos", root: Path | None = None
) -> TaggingCorpus:
    """The named tagging corpus (checked files under ``root``) or a folder in the UD layout."""
    if column not in TAG_COLUMNS:
        raise ElmanError(f"[data] column = {column!r} unknown; valid: {', '.join(TAG_COLUMNS)}")
    spec = DATASETS.get(name_or_dir)
    if spec is not None:
        if spec.task != "tagger":
            raise ElmanError(
                f"dataset '{name_or_dir}' is a {spec.task} corpus, not tagged text; "
                f"tagging datasets: {_known()}"
            )
        root = data_root() if root is None else Path(root)
        files = {
            split: check_file(spec.files[role], root, spec.name)
            for split, role in _FILE_ROLES.items()
        }
        return TaggingCorpus(spec.name, files, column)
    folder = Path(name_or_dir).expanduser()
    if folder.is_dir():
        files = {split: _find(folder, role) for split, role in _FILE_ROLES.items()}
        return TaggingCorpus(str(folder), files, column)
    raise ElmanError(
        f"unknown tagging dataset {name_or_dir!r}; known: {_known()} (or a folder holding "
        "*train*.conllu, *dev*.conllu and *test*.conllu)"
    )


# --- vocabularies ----------------------------------------------------------------------
@dataclass
class TaggerVocab:
    """The tagger's three vocabularies, all built from the training split only.

    With pretrained word vectors the word vocabulary goes on, after the training forms, with
    the vectors' words that training never saw (:meth:`extend`); ``train_size`` marks where
    the training forms end, so "unseen in training" keeps its meaning.
    """

    words: Vocabulary  # <pad>, <unk>, then forms by frequency (then pretrained-only words)
    chars: Vocabulary  # <pad>, <unk>, then characters by frequency
    tags: Vocabulary  # the tag set, by frequency (no specials)
    train_size: int | None = None  # words[:train_size] are specials + training forms

    @property
    def training_forms(self) -> set[str]:
        """The word forms of the training split (every one when ``min_count`` is 1)."""
        return set(self.words.itos[len(SPECIALS) : self.train_size])

    def extend(self, words: Sequence[str]) -> TaggerVocab:
        """A copy whose word vocabulary also holds ``words`` (those not in it, in order)."""
        known = self.words.stoi
        extra = [w for w in dict.fromkeys(words) if w not in known]
        return TaggerVocab(
            words=Vocabulary([*self.words.itos, *extra]),
            chars=self.chars,
            tags=self.tags,
            train_size=self.train_size if self.train_size is not None else len(self.words),
        )

    @classmethod
    def build(
        cls, sentences: Sequence[TaggedSentence], min_count: int = 1, max_size: int | None = None
    ) -> TaggerVocab:
        forms = [f for s in sentences for f in s.forms]
        return cls(
            words=Vocabulary.build(
                forms, min_count=min_count, max_size=max_size, specials=SPECIALS
            ),
            chars=Vocabulary.build((c for f in forms for c in f), specials=SPECIALS),
            tags=Vocabulary.build((t for s in sentences for t in s.tags), specials=()),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaggerVocab):
            return NotImplemented
        mine = (self.words, self.chars, self.tags, self.train_size or len(self.words))
        return mine == (other.words, other.chars, other.tags, other.train_size or len(other.words))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k).to_dict() for k in ("words", "chars", "tags")}
        if self.train_size is not None:
            d["train_size"] = self.train_size
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaggerVocab:
        if not isinstance(d, dict) or not {"words", "chars", "tags"} <= set(d) <= {
            "words",
            "chars",
            "tags",
            "train_size",
        }:
            raise ElmanError("tagger vocabulary: expected a dictionary of words, chars and tags")
        vocabs = {k: Vocabulary.from_dict(d[k]) for k in ("words", "chars", "tags")}
        return cls(**vocabs, train_size=d.get("train_size"))


# --- batches ---------------------------------------------------------------------------
@dataclass
class TagBatch:
    """B sentences padded to T words (module docstring for the layout).

    Attributes:
        words: (B, T) word ids, ``<pad>`` (0) after each sentence's end.
        forms: (B, T) row of each word's spelling in ``chars`` (0 where padded).
        chars: (U, C) character ids of the batch's U distinct forms, 0-padded.
        char_lengths: (U,) characters per form.
        tags: (B, T) gold tag ids; ``IGNORE_INDEX`` where padded (or the tag is unknown).
        lengths: (B,) words per sentence.
        index: (B,) position of each sentence in the list it was batched from.
        num_tokens: the number of scored tags, as a Python int.
    """

    words: torch.Tensor
    forms: torch.Tensor
    chars: torch.Tensor
    char_lengths: torch.Tensor
    tags: torch.Tensor
    lengths: torch.Tensor
    index: torch.Tensor
    num_tokens: int

    def to(self, device: torch.device | str) -> TagBatch:
        """This batch on ``device``."""
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return TagBatch(**moved, num_tokens=self.num_tokens)

    def __len__(self) -> int:
        """B, the sentences of the batch."""
        return self.lengths.size(0)

    def rows(self, start: int, end: int) -> TagBatch:
        """Sentences ``start`` … ``end`` − 1 (at least one; one process's share of a batch).

        Trimmed to the longest chosen sentence and to the forms the chosen sentences spell
        (renumbered), so a share costs what a batch of its own would.
        """
        lengths = self.lengths[start:end]
        T = int(lengths.max())
        real = torch.arange(T, device=lengths.device) < lengths[:, None]  # (b, T)
        forms = self.forms[start:end, :T]
        used = forms[real].unique()  # the chars rows still needed, in their order
        renumber = torch.zeros_like(self.char_lengths)
        renumber[used] = torch.arange(used.numel(), device=used.device)
        char_lengths = self.char_lengths[used]
        tags = self.tags[start:end, :T]
        return TagBatch(
            words=self.words[start:end, :T],
            forms=torch.where(real, renumber[forms], 0),
            chars=self.chars[used, : int(char_lengths.max())],
            char_lengths=char_lengths,
            tags=tags,
            lengths=lengths,
            index=self.index[start:end],
            num_tokens=int((tags != IGNORE_INDEX).sum()),
        )


def make_batch(
    sentences: Sequence[Sequence[str]],
    vocab: TaggerVocab,
    tags: Sequence[Sequence[str]] | None = None,
    index: Sequence[int] | None = None,
) -> TagBatch:
    """One padded batch of tokenised sentences (and their gold tags, when given)."""
    if any(len(s) == 0 for s in sentences):
        raise ValueError("a sentence to tag has no words")
    B, T = len(sentences), max(len(s) for s in sentences)
    words = torch.zeros(B, T, dtype=torch.long)
    forms = torch.zeros(B, T, dtype=torch.long)
    gold = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    rows: dict[str, int] = {}
    for b, sentence in enumerate(sentences):
        words[b, : len(sentence)] = vocab.words.encode(sentence)
        forms[b, : len(sentence)] = torch.tensor([rows.setdefault(f, len(rows)) for f in sentence])
        if tags is not None:
            stoi = vocab.tags.stoi
            gold[b, : len(sentence)] = torch.tensor([stoi.get(t, IGNORE_INDEX) for t in tags[b]])
    spelt = list(rows)  # row order: first occurrence
    C = max(len(f) for f in spelt)
    chars = torch.zeros(len(spelt), C, dtype=torch.long)
    for u, form in enumerate(spelt):
        chars[u, : len(form)] = vocab.chars.encode(form)
    return TagBatch(
        words=words,
        forms=forms,
        chars=chars,
        char_lengths=torch.tensor([len(f) for f in spelt]),
        tags=gold,
        lengths=torch.tensor([len(s) for s in sentences]),
        index=torch.tensor(list(index) if index is not None else range(B)),
        num_tokens=int((gold != IGNORE_INDEX).sum()) if tags is not None else 0,
    )


def by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the sentences with these lengths in sorted-length batches (least padding);
    sentences of length 0 are left out."""
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class SentenceBatches:
    """Batches of ``batch_size`` sentences; ``shuffle`` buckets them by length per epoch.

    Without shuffling the sentences are batched in sorted-length order (least padding) and
    every batch's ``index`` gives the sentences' places in the input list.
    """

    def __init__(
        self,
        sentences: Sequence[TaggedSentence],
        vocab: TaggerVocab,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        bucket_batches: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not sentences:
            raise ElmanError("no sentences to batch")
        self.sentences, self.vocab, self.batch_size = sentences, vocab, batch_size
        self.shuffle, self.seed, self.bucket_batches = shuffle, seed, bucket_batches
        self.epoch = 1

    def __len__(self) -> int:
        return -(-len(self.sentences) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[list[int]]:
        """The sentence indices of every batch of this epoch, in the order they are seen."""
        lengths = [len(s.forms) for s in self.sentences]
        n, bs = len(lengths), self.batch_size
        if not self.shuffle:
            return by_length(lengths, bs)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=g).tolist()
        # Sort within buckets of bucket_batches batches: similar lengths, still random.
        size = bs * self.bucket_batches
        order = []
        for start in range(0, n, size):
            order += sorted(perm[start : start + size], key=lambda i: lengths[i])
        batches = [order[i : i + bs] for i in range(0, n, bs)]
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def iter_from(self, i: int) -> Iterator[TagBatch]:
        for ids in self._order()[i:]:
            chosen = [self.sentences[j] for j in ids]
            yield make_batch(
                [s.forms for s in chosen], self.vocab, [s.tags for s in chosen], index=ids
            )

    def __iter__(self) -> Iterator[TagBatch]:
        return self.iter_from(0)
