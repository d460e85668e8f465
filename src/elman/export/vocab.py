"""What a user of an exported model needs besides the graph: the vocabularies, as plain JSON.

``NAME.vocab.json`` beside ``NAME.onnx`` (docs/export.md) holds, for every task, ``format``,
``task``, ``files`` (the graph files, by role) and ``graphs`` (each graph's input and output
names), and then

* ``lm``: ``tokens`` (the vocabulary in id order), ``unk_id``, ``eos_id`` (null when the
  vocabulary has none; a history starts after an ``<eos>``), ``level`` (``word`` or ``char``),
  ``state`` (the names of the state tensors and their shape, ``[L, "batch", H]``);
* ``tagger``: ``words``, ``chars`` and ``tags`` in id order, ``pad_id`` 0 and ``unk_id`` 1;
* ``translation``: the sentencepiece model file(s) written beside (``src_model``,
  ``tgt_model``: the same file for a joint vocabulary), ``tgt_pieces`` (the target pieces in
  the decoder's id order: its ids are a subset of the sentencepiece model's, ``tgt_keep``),
  the special ids, the state shape, and the recipe's greedy-search limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elman.data.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SubwordVocab
from elman.data.tagging import TaggerVocab
from elman.data.vocabulary import Vocabulary
from elman.files import write_bytes
from elman.inference.search import NEVER_WRITTEN
from elman.nn.recurrent import Recurrent
from elman.tasks.protocol import Loaded

FORMAT = 1


def state_record(rnn: Recurrent, names: list[str]) -> dict[str, Any]:
    return {"names": names, "shape": [rnn.num_layers, "batch", rnn.hidden_size]}


def lm_record(loaded: Loaded) -> dict[str, Any]:
    vocab: Vocabulary = loaded.vocab
    rnn = loaded.model.recurrent
    return {
        "level": loaded.level,
        "tokens": list(vocab.itos),
        "unk_id": vocab.unk_index,
        "eos_id": vocab.eos_index,
        "state": state_record(rnn, ["h", "c"] if rnn.state_size == 2 else ["h"]),
    }


def tagger_record(loaded: Loaded) -> dict[str, Any]:
    vocab: TaggerVocab = loaded.vocab
    return {
        "words": list(vocab.words.itos),
        "chars": list(vocab.chars.itos),
        "tags": list(vocab.tags.itos),
        "pad_id": 0,
        "unk_id": 1,
        "uses_chars": loaded.model.chars is not None,
    }


def translation_record(loaded: Loaded, out: Path) -> dict[str, Any]:
    """The record, after writing the sentencepiece model(s) beside ``out``."""
    vocab: SubwordVocab = loaded.vocab
    src_file = sibling(out, ".src.model" if not vocab.joint else ".spm.model")
    write_bytes(src_file, vocab.src.proto)
    tgt_file = src_file
    if not vocab.joint:
        tgt_file = sibling(out, ".tgt.model")
        write_bytes(tgt_file, vocab.tgt.proto)
    decode = loaded.recipe.decode
    rnn = loaded.model.decoder
    return {
        "src_model": src_file.name,
        "tgt_model": tgt_file.name,
        "tgt_keep": vocab.tgt.keep,
        "tgt_pieces": vocab.tgt.pieces(range(len(vocab.tgt))),
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "never_written": sorted(NEVER_WRITTEN),
        "kind": loaded.model.kind,
        "state": state_record(rnn, ["h", "c"] if rnn.state_size == 2 else ["h"]),
        "max_len_ratio": decode.max_len_ratio,
        "max_len_extra": decode.max_len_extra,
        "max_source_len": decode.max_source_len,
    }


def sibling(out: Path, suffix: str) -> Path:
    """``runs/x.onnx`` -> ``runs/x`` + ``suffix``."""
    return out.with_name(out.stem + suffix) if out.suffix == ".onnx" else Path(f"{out}{suffix}")
