"""Tagged corpora, vocabularies and sentence batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elman.data.batching import IGNORE_INDEX
from elman.data.tagging import (
    SentenceBatches,
    TaggedSentence,
    TaggerVocab,
    make_batch,
    resolve_tagging,
)
from elman.errors import ElmanError
from train.tagtoy import node, write_tagged_corpus

SENTENCES = [
    TaggedSentence(["the", "cat", "sat"], ["DET", "NOUN", "VERB"]),
    TaggedSentence(["the", "dog"], ["DET", "NOUN"]),
    TaggedSentence(["a", "dog", "ran", "far", "away"], ["DET", "NOUN", "VERB", "ADV", "ADV"]),
]


def test_vocab_from_training_sentences_and_round_trip():
    vocab = TaggerVocab.build(SENTENCES)
    assert vocab.words.itos[:3] == ["<pad>", "<unk>", "dog"]  # then by frequency
    assert vocab.tags.itos[0] in ("DET", "NOUN")
    assert "t" in vocab.chars and vocab.chars.stoi["<pad>"] == 0
    assert TaggerVocab.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(ElmanError, match="words, chars and tags"):
        TaggerVocab.from_dict({"itos": []})


def test_batch_layout_pads_and_spells_each_form_once():
    vocab = TaggerVocab.build(SENTENCES)
    batch = make_batch([["the", "cat", "the"], ["zebra"]], vocab, [["DET", "NOUN", "DET"], ["X"]])
    assert batch.words.shape == (2, 3) and batch.lengths.tolist() == [3, 1]
    assert batch.words[1].tolist() == [vocab.words.unk_index, 0, 0]
    assert batch.forms.tolist() == [[0, 1, 0], [2, 0, 0]]
    assert batch.chars.shape == (3, 5) and batch.char_lengths.tolist() == [3, 3, 5]
    # a tag never seen in training is not scored by the loss, padding neither
    assert batch.tags[1].tolist() == [IGNORE_INDEX] * 3
    assert batch.num_tokens == 3


def test_sentence_batches_cover_every_sentence_once_per_epoch():
    sentences = [TaggedSentence(["w"] * (1 + i % 7), ["T"] * (1 + i % 7)) for i in range(23)]
    vocab = TaggerVocab.build(sentences)
    data = SentenceBatches(sentences, vocab, 4, shuffle=True, seed=3, bucket_batches=2)
    assert len(data) == 6
    orders = []
    for epoch in (1, 2):
        data.set_epoch(epoch)
        ids = [i for b in data.iter_from(0) for i in b.index.tolist()]
        assert sorted(ids) == list(range(23))
        orders.append(ids)
        tail = [b.index.tolist() for b in data.iter_from(4)]
        assert tail == [b.index.tolist() for b in list(data.iter_from(0))[4:]]
    assert orders[0] != orders[1]  # reshuffled, and the same again for the same epoch:
    data.set_epoch(1)
    assert [i for b in data.iter_from(0) for i in b.index.tolist()] == orders[0]


def test_evaluation_batches_are_sorted_by_length():
    vocab = TaggerVocab.build(SENTENCES)
    batches = list(SentenceBatches(SENTENCES, vocab, 2))
    assert [b.index.tolist() for b in batches] == [[1, 0], [2]]
    assert batches[0].to("cpu").num_tokens == 5


def test_resolve_folder_named_and_bad_datasets(tmp_path):
    folder = write_tagged_corpus(tmp_path / "toy", sizes=(3, 2, 2))
    corpus = resolve_tagging(str(folder))
    assert [len(corpus.sentences(s)) for s in ("train", "valid", "test")] == [3, 2, 2]
    assert corpus.sentences("train")[0].tags[0] == "DET"
    assert resolve_tagging(str(folder), "xpos").sentences("train")[0].tags[0] == "det"
    (folder / "toy-test.conllu").rename(folder / "other.conllu")
    with pytest.raises(ElmanError, match=r"exactly one \*test\*.conllu"):
        resolve_tagging(str(folder))
    with pytest.raises(ElmanError, match="not tagged text"):
        resolve_tagging("ptb")
    with pytest.raises(ElmanError, match="known: ud-en-lines"):
        resolve_tagging(str(tmp_path / "nowhere"))
    with pytest.raises(ElmanError, match="column"):
        resolve_tagging(str(folder), "deprel")


def test_empty_tag_in_training_file_is_a_clear_error(tmp_path):
    folder = write_tagged_corpus(tmp_path / "toy", sizes=(3, 2, 2))
    bad = "# sent_id = b\n" + node("1", "the", "DET") + "\n" + node("2", "cat", "_") + "\n\n"
    train = folder / "toy-train.conllu"
    train.write_text(train.read_text() + bad)
    lines = train.read_text().split("\n")
    line = lines.index("# sent_id = b") + 1
    with pytest.raises(ElmanError, match=r"UPOS column of word 2 \('cat'\) is empty") as err:
        resolve_tagging(str(folder)).sentences("train")
    assert f"{train}:{line}:" in str(err.value)


@pytest.mark.data
def test_named_ud_corpora_resolve(real_root):
    from data.conftest import need

    need(real_root, "ud/UD_English-Atis/en_atis-ud-dev.conllu")
    corpus = resolve_tagging("ud-en-atis", root=real_root)
    assert len(corpus.sentences("valid")) == 572
    assert isinstance(corpus.files["test"], Path)
    assert torch.tensor([len(s.forms) for s in corpus.sentences("valid")]).min() >= 1
