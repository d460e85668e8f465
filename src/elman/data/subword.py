"""Subword vocabularies with sentencepiece: raw text in, piece ids out, plain text back.

A translation model reads and writes subword pieces, so that every word -- also one never seen
in training -- is a sequence of known pieces, and the vocabulary stays small (a few thousand
pieces instead of tens of thousands of words)::

    "Zwei junge Männer" -> ▁Zwei ▁junge ▁Männ er -> [412, 377, 2081, 30] -> "Zwei junge Männer"

The pieces are learned by sentencepiece (Kudo & Richardson 2018) from the **training split only**,
in memory, either by byte-pair encoding (``bpe``: repeatedly merge the most frequent adjacent
pair, Sennrich et al. 2016) or as a ``unigram`` language model over pieces (Kudo 2018). One
``joint`` model serves both languages (shared pieces for names and numbers), or ``separate``
models are learned for the source and the target, each of ``vocab_size`` pieces.

Every character of the training text is kept (``character_coverage = 1``); a character that
never occurs there maps to the unknown piece ``<unk>``. Text is normalised with sentencepiece's
default NFKC rule (``nmt_nfkc``: e.g. runs of spaces collapse), so decoding returns the
normalised text: ``decode(encode(s)) == s`` for any such text without unknown characters
(``<unk>`` decodes to nothing).

The ids of the special pieces are the same in every model::

    <pad> = 0    <unk> = 1    <s> = 2 (begin)    </s> = 3 (end)

The target side keeps only the pieces of the training targets (:class:`SubwordVocab`). The
serialized models (bytes) are stored in the checkpoint (``to_dict``), so a checkpoint alone
translates; ``torch.load(weights_only=True)`` accepts bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from elman.errors import ElmanError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("bpe", "unigram")


def _spm() -> ModuleType:
    import sentencepiece  # imported here: only translation needs it

    return sentencepiece


def train_sentencepiece(
    lines: Iterable[str],
    vocab_size: int,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
) -> bytes:
    """A sentencepiece model learned from ``lines``, serialized.

    ``vocab_size`` is an upper bound: a corpus too small for that many pieces gets fewer
    (``hard_vocab_limit = False``), so tiny test corpora work with the recipe's size.
    """
    if model_type not in MODEL_TYPES:
        raise ElmanError(f"subword model {model_type!r} unknown; valid: {', '.join(MODEL_TYPES)}")
    if vocab_size < 8:
        raise ElmanError(f"vocab_size = {vocab_size}: a subword vocabulary needs at least 8 pieces")
    text = [line for line in lines if line.strip()]
    if not text:
        raise ElmanError("no training text to learn subword pieces from (the split is empty)")
    out = io.BytesIO()
    try:
        _spm().SentencePieceTrainer.train(
            sentence_iterator=iter(text),
            model_writer=out,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,
            num_threads=1,  # deterministic and cheap (a second for Multi30k)
            minloglevel=2,  # its progress log is long and for people debugging sentencepiece
        )
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "failed"
        raise ElmanError(f"sentencepiece could not learn {vocab_size} pieces: {first}") from None
    return out.getvalue()


def load_processor(proto: bytes) -> Any:
    """A sentencepiece processor of the serialized model ``proto``; malformed bytes, or a
    model without elman's special pieces (module docstring), are one ElmanError."""
    malformed = "the sentencepiece model is malformed ({}); the checkpoint is damaged: retrain"
    if not proto:  # sentencepiece accepts empty bytes as a model that is not initialised
        raise ElmanError(malformed.format("no bytes"))
    try:
        sp = _spm().SentencePieceProcessor(model_proto=proto)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise ElmanError(malformed.format(first[:120])) from None
    specials = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
    if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID) or sp.get_piece_size() <= EOS_ID:
        raise ElmanError(malformed.format(f"special piece ids {specials}, expected 0, 1, 2, 3"))
    return sp


def checked_keep(keep: Sequence[int], size: int) -> list[int]:
    """``keep`` as a list of distinct piece ids of a model of ``size`` pieces, the four
    specials first (:class:`SubwordModel`); anything else is an ElmanError."""
    if not isinstance(keep, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in keep
    ):
        raise ElmanError("a restricted subword model's kept pieces must be a list of piece ids")
    ids = list(keep)
    if ids[:4] != [PAD_ID, UNK_ID, BOS_ID, EOS_ID]:
        raise ElmanError("a restricted subword model must keep the four special pieces first")
    if len(set(ids)) != len(ids) or not all(0 <= i < size for i in ids):
        raise ElmanError(
            f"a restricted subword model's kept pieces must be distinct ids below {size}"
        )
    return ids


class SubwordModel:
    """One serialized sentencepiece model, loaded: encode to ids, decode to text.

    ``keep`` (optional) restricts the model to some of its pieces, renumbered 0, 1, 2, … in
    that order (it starts with the four specials); any other piece encodes as ``<unk>``. The
    target side uses it to keep only the pieces its training text contains (class docstring of
    :class:`SubwordVocab`).
    """

    def __init__(self, proto: bytes, keep: Sequence[int] | None = None) -> None:
        self.proto = bytes(proto)
        self._sp = load_processor(self.proto)
        self.keep = None if keep is None else checked_keep(keep, self._sp.get_piece_size())
        self._index = None if self.keep is None else {p: k for k, p in enumerate(self.keep)}

    def __len__(self) -> int:
        return self._sp.get_piece_size() if self.keep is None else len(self.keep)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SubwordModel)
            and self.proto == other.proto
            and self.keep == other.keep
        )

    # no __hash__: a class that defines __eq__ alone gets __hash__ = None, i.e. unhashable

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        """The piece ids of every line (no ``<s>``/``</s>``; an empty line is ``[]``)."""
        ids = self._sp.encode(list(lines))
        if self._index is None:
            return ids
        return [[self._index.get(p, UNK_ID) for p in row] for row in ids]

    def _piece_ids(self, ids: Sequence[int]) -> list[int]:
        ids = [int(i) for i in ids]
        return ids if self.keep is None else [self.keep[i] for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Plain text from piece ids; the special pieces, ``<unk>`` included, are dropped."""
        return self._sp.decode([i for i in self._piece_ids(ids) if i > EOS_ID])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The piece strings of ``ids`` (``▁`` marks the start of a word)."""
        return [self._sp.id_to_piece(i) for i in self._piece_ids(ids)]


def used_pieces(model: SubwordModel, lines: Sequence[str]) -> list[int]:
    """The specials, then every piece id the encoded ``lines`` contain, in increasing order."""
    seen = {i for row in model.encode(lines) for i in row}
    return [PAD_ID, UNK_ID, BOS_ID, EOS_ID, *sorted(seen - {PAD_ID, UNK_ID, BOS_ID, EOS_ID})]


class SubwordVocab:
    """The source and target subword models of a translation model.

    The target side keeps only the pieces that occur in the training targets (and the specials):
    a piece the decoder never sees as a target cannot be learned, so it has no place in the
    output softmax, the costliest product of training. With a joint model most pieces are
    one language's only (Multi30k, joint 8,000: the English side uses 4,269), so the target
    side is a restricted view of the joint model, and the softmax is about half as wide.

    Attributes:
        src, tgt: :class:`SubwordModel`; the same ``proto`` for a joint vocabulary.
    """

    def __init__(self, src: bytes, tgt: bytes | None = None, tgt_keep: Sequence[int] | None = None):
        self.src = SubwordModel(src)
        self.tgt = SubwordModel(src if tgt is None else tgt, tgt_keep)

    @property
    def joint(self) -> bool:
        return self.src.proto == self.tgt.proto

    @classmethod
    def build(
        cls,
        src_lines: Sequence[str],
        tgt_lines: Sequence[str],
        *,
        vocab_size: int,
        model_type: str = "bpe",
        joint: bool = True,
        character_coverage: float = 1.0,
    ) -> SubwordVocab:
        """Learn the model(s) from the training lines of both sides."""
        if joint:
            src = train_sentencepiece(
                [*src_lines, *tgt_lines], vocab_size, model_type, character_coverage
            )
            tgt = None
        else:
            src = train_sentencepiece(src_lines, vocab_size, model_type, character_coverage)
            tgt = train_sentencepiece(tgt_lines, vocab_size, model_type, character_coverage)
        keep = used_pieces(SubwordModel(src if tgt is None else tgt), tgt_lines)
        return cls(src, tgt, keep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordVocab) and self.src == other.src and self.tgt == other.tgt

    # no __hash__: a class that defines __eq__ alone gets __hash__ = None, i.e. unhashable

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint: the serialized model(s) as bytes, kept target ids."""
        return {
            "kind": "sentencepiece",
            "src": self.src.proto,
            "tgt": None if self.joint else self.tgt.proto,
            "tgt_keep": self.tgt.keep,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubwordVocab:
        if not isinstance(d, dict) or d.get("kind") != "sentencepiece":
            raise ElmanError("the checkpoint holds no sentencepiece vocabulary")
        src, tgt = d.get("src"), d.get("tgt")
        if not isinstance(src, bytes) or not isinstance(tgt, bytes | None):
            raise ElmanError(
                "the checkpoint's sentencepiece vocabulary holds no serialized model (bytes)"
            )
        return cls(src, tgt, d.get("tgt_keep"))
