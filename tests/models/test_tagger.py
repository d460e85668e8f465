"""The BiRNN tagger: padding never changes a prediction, the loss is the masked sum, configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elman.data.tagging import TaggedSentence, TaggerVocab, make_batch
from elman.models.tagger import Tagger, TaggerConfig

WORDS = "the cat sat on a mat dog ran to big red house".split()


def vocab_and_sentences(seed: int = 0, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    sentences = []
    for _ in range(n):
        length = int(torch.randint(1, 9, (1,), generator=g))
        ids = torch.randint(len(WORDS), (length,), generator=g).tolist()
        sentences.append(TaggedSentence([WORDS[i] for i in ids], [f"T{i % 3}" for i in ids]))
    return TaggerVocab.build(sentences[:4]), sentences  # the last ones hold unseen words


def tagger(vocab: TaggerVocab, **kw) -> Tagger:
    torch.manual_seed(0)
    options = dict(
        embedding_dim=6, char_embedding_dim=4, char_hidden_size=3, hidden_size=5, num_layers=2
    )
    options.update(kw)
    config = TaggerConfig(
        vocab_size=len(vocab.words),
        char_vocab_size=len(vocab.chars),
        num_tags=len(vocab.tags),
        **options,
    )
    return Tagger(config).double().eval()


CASES = [
    {},
    {"cell": "gru", "cell_options": {"variant": "cudnn"}},
    {"cell": "gru"},  # the unrolled path
    {"cell": "elman", "num_layers": 3},
    {"char_embedding_dim": 0},
    {"bidirectional": False},
    {"impl": "unrolled"},
]


@pytest.mark.parametrize("options", CASES)
def test_a_sentence_scores_the_same_alone_and_in_any_batch(options):
    vocab, sentences = vocab_and_sentences()
    model = tagger(vocab, **options)
    forms = [s.forms for s in sentences]
    together = model(make_batch(forms, vocab))  # (B, T, K)
    for b, words in enumerate(forms):
        alone = model(make_batch([words], vocab))[0]
        assert torch.allclose(together[b, : len(words)], alone, atol=1e-10)


def test_padding_ids_never_reach_a_prediction():
    vocab, sentences = vocab_and_sentences()
    model = tagger(vocab)
    batch = make_batch([s.forms for s in sentences], vocab)
    real = torch.arange(batch.words.shape[1]) < batch.lengths.unsqueeze(1)  # (B, T)
    noisy = make_batch([s.forms for s in sentences], vocab)
    noisy.words = torch.where(real, noisy.words, torch.randint_like(noisy.words, len(vocab.words)))
    assert torch.equal(model(batch)[real], model(noisy)[real])


@torch.no_grad()
def test_loss_is_the_summed_cross_entropy_over_real_words():
    vocab, sentences = vocab_and_sentences()
    model = tagger(vocab)
    batch = make_batch([s.forms for s in sentences], vocab, [s.tags for s in sentences])
    loss_sum, n, state = model.loss(batch)
    expected, count = 0.0, 0
    for s in sentences:  # each sentence alone, log-softmax by hand
        logits = model(make_batch([s.forms], vocab))[0]
        logp = logits - logits.exp().sum(-1, keepdim=True).log()
        for t, tag in enumerate(s.tags):
            if tag in vocab.tags:
                expected -= float(logp[t, vocab.tags.stoi[tag]])
                count += 1
    assert state is None and n == count
    assert float(loss_sum) == pytest.approx(expected, rel=1e-9)


def test_predict_drops_padding_and_matches_argmax():
    vocab, sentences = vocab_and_sentences()
    model = tagger(vocab)
    batch = make_batch([s.forms for s in sentences], vocab)
    predicted = model.predict(batch)
    assert [len(p) for p in predicted] == [len(s.forms) for s in sentences]
    assert predicted[0] == F.softmax(model(batch)[0], -1).argmax(-1)[: len(predicted[0])].tolist()


def test_word_dropout_only_while_training():
    vocab, sentences = vocab_and_sentences()
    no_dropout = {"dropout_embedding": 0.0, "dropout_hidden": 0.0, "dropout_output": 0.0}
    model = tagger(vocab, dropout_words=0.5, **no_dropout)
    batch = make_batch([s.forms for s in sentences], vocab)
    assert torch.equal(model(batch), model(batch))  # eval: deterministic
    model.train()
    torch.manual_seed(1)
    a = model(batch)
    torch.manual_seed(2)
    assert not torch.equal(a, model(batch))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"cell": "rnn"}, "cell"),
        ({"dropout_output": 1.0}, "dropout_output"),
        ({"dropout_words": -0.5}, "dropout_words"),
        ({"num_layers": 0}, "num_layers"),
        ({"cell_options": {"forget_bias": 1.0}, "cell": "gru"}, "forget_bias"),
    ],
)
def test_bad_configs_name_the_argument(kw, match):
    vocab, _ = vocab_and_sentences()
    with pytest.raises(ValueError, match=match):
        tagger(vocab, **kw)
