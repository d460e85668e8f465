"""Sentencepiece vocabularies: round trips, unknown characters, joint/separate, checkpointing."""

from __future__ import annotations

import io

import pytest
import torch

from elman.data.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SubwordVocab
from elman.errors import ElmanError

DE = ["Zwei junge Männer spielen Fußball.", "Ein Hund läuft über die Wiese.", "Eine Frau liest."]
EN = ["Two young men play soccer.", "A dog runs across the meadow.", "A woman is reading."]


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
@pytest.mark.parametrize("joint", [True, False])
def test_round_trip_and_special_ids(model_type, joint):
    vocab = SubwordVocab.build(DE * 3, EN * 3, vocab_size=60, model_type=model_type, joint=joint)
    assert vocab.joint == joint and (vocab.src.proto == vocab.tgt.proto) == joint
    for model, lines in ((vocab.src, DE), (vocab.tgt, EN)):
        ids = model.encode(lines)
        assert all(i > EOS_ID for row in ids for i in row)  # no special piece in plain text
        assert [model.decode(row) for row in ids] == lines
        assert model.pieces([PAD_ID, UNK_ID, BOS_ID, EOS_ID]) == ["<pad>", "<unk>", "<s>", "</s>"]
    assert vocab.src.encode([""]) == [[]]


def test_unknown_characters_are_unk_pieces_and_decode_to_nothing():
    vocab = SubwordVocab.build(DE, EN, vocab_size=50)
    ids = vocab.src.encode(["Ein ☃ Hund"])[0]
    assert UNK_ID in ids
    assert vocab.src.decode(ids).split() == ["Ein", "Hund"]


def test_the_target_side_keeps_only_the_pieces_of_the_training_targets():
    vocab = SubwordVocab.build(DE, EN, vocab_size=80)
    assert len(vocab.tgt) < len(vocab.src)
    kept = set(vocab.tgt.pieces(range(len(vocab.tgt))))
    assert kept == {"<pad>", "<unk>", "<s>", "</s>"} | {
        p for line in EN for p in vocab.src.pieces(vocab.src.encode([line])[0])
    }
    assert vocab.tgt.encode(EN) != vocab.src.encode(EN)  # renumbered
    assert [vocab.tgt.decode(row) for row in vocab.tgt.encode(EN)] == EN
    assert vocab.tgt.encode(["Fußball"])[0].count(UNK_ID) >= 1  # German-only pieces


def test_separate_models_differ_and_joint_is_one():
    sep = SubwordVocab.build(DE, EN, vocab_size=50, joint=False)
    assert sep.src != sep.tgt
    assert "ß" in "".join(sep.src.pieces(range(len(sep.src))))
    assert "ß" not in "".join(sep.tgt.pieces(range(len(sep.tgt))))


def test_checkpoint_round_trip_with_weights_only():
    for joint in (True, False):
        vocab = SubwordVocab.build(DE, EN, vocab_size=50, joint=joint)
        buf = io.BytesIO()
        torch.save({"vocab": vocab.to_dict()}, buf)
        buf.seek(0)
        back = SubwordVocab.from_dict(torch.load(buf, weights_only=True)["vocab"])
        assert back == vocab and back.joint == joint
        assert back.src.encode(DE) == vocab.src.encode(DE)


def test_vocab_size_is_an_upper_bound_and_bad_input_is_one_line():
    vocab = SubwordVocab.build(["a b"], ["c d"], vocab_size=5000)
    assert len(vocab.src) < 5000
    with pytest.raises(ElmanError, match="at least 8"):
        SubwordVocab.build(DE, EN, vocab_size=4)
    with pytest.raises(ElmanError, match="no training text"):
        SubwordVocab.build(["", " "], [""], vocab_size=50)
    with pytest.raises(ElmanError, match="unknown"):
        SubwordVocab.build(DE, EN, vocab_size=50, model_type="wordpiece")
    with pytest.raises(ElmanError, match="no sentencepiece vocabulary"):
        SubwordVocab.from_dict({"itos": ["a"]})
