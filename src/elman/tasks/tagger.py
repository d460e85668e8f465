"""The tagging task: a CoNLL-U corpus, its vocabularies, sentence batches and a BiRNN tagger.

Trained with the shared trainer (the tagger's ``loss`` is the summed cross entropy over the real
words of a batch; no state is carried between batches); the validation loss picks ``best.pt``
and drives the schedule and early stopping. Reported: token accuracy on the split, accuracy on
the words whose form never occurs in training (``unseen_accuracy``; exactly that when the word
vocabulary keeps every training form, ``min_count = 1`` and no ``max_size``), and with
``report`` per-tag precision/recall/F1 and the confusion counts. An ensemble (``Loaded.ensemble``)
tags with the mean of its members' distributions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from elman.data.tagging import (
    SentenceBatches,
    TaggerVocab,
    TaggingCorpus,
    resolve_tagging,
)
from elman.data.vectors import lookup, read_vectors
from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError
from elman.inference.tagging import Member, tag_distributions, tag_sentences
from elman.models.tagger import Tagger, TaggerConfig, build_tagger
from elman.tasks import tagging_metrics
from elman.tasks.finetuning import (
    VocabReport,
    check_extension,
    check_same,
    outside,
    share,
    vocab_source,
)
from elman.tasks.protocol import Capabilities, Loaded, Metrics, Prepared, Task, rebuild
from elman.train import distributed
from elman.train.recipe import DROPOUTS, Recipe, Renamed
from elman.train.trainer import pick_device


@dataclass
class TaggerDataConfig:
    dataset: str = (
        "ud-en-lines"  # a name (`elman data list`) or a folder of *train/dev/test*.conllu
    )
    column: str = "upos"  # upos | xpos
    batch_size: int = 32  # sentences per training step
    eval_batch_size: int = 256  # sentences per evaluation step (any size gives the same tags)
    min_count: int = 1  # rarer training forms are <unk> to the word embedding
    max_size: int | None = None
    vectors: str | None = None  # pretrained word vectors (word2vec/fastText/GloVe text file)
    vectors_limit: int | None = 100_000  # read at most the first (most frequent) N of them
    # another run's vocabularies (a checkpoint or run folder; --init-from sets it), kept or with
    # extend_vocab extended by the training words, characters and tags they lack
    vocab_from: str | None = None
    extend_vocab: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.column not in ("upos", "xpos"):
            raise ValueError(f"column {self.column!r} unknown; valid: upos, xpos")


@dataclass
class TaggerRecipe(Recipe):
    data: TaggerDataConfig
    model: TaggerConfig


def build_model(model_cfg: TaggerConfig, vocab: TaggerVocab) -> Tagger:
    model_cfg.vocab_size = len(vocab.words)
    model_cfg.char_vocab_size = len(vocab.chars)
    model_cfg.num_tags = len(vocab.tags)
    try:
        return build_tagger(model_cfg)
    except ValueError as err:
        raise ElmanError(f"[model]: {err}") from None


@torch.no_grad()
def init_embedding(
    table: torch.Tensor, vocab: TaggerVocab, words: list[str], vectors: np.ndarray, source: str
) -> None:
    """Fill the rows of ``table`` (V, D) found in the pretrained vectors, scaled to std 1
    (the spread of torch's N(0, 1) embedding init); other rows keep their values."""
    if vectors.shape[1] != table.shape[1]:
        raise ElmanError(
            f"{source}: vectors of dimension {vectors.shape[1]}, but model.embedding_dim = "
            f"{table.shape[1]}; set model.embedding_dim = {vectors.shape[1]}"
        )
    rows, found = lookup(vocab.words.itos, words, vectors)
    found[0] = False  # <pad> stays zero
    if found.any():
        scale = float(rows[found].std()) or 1.0
        mask = torch.from_numpy(found)
        table[mask] = torch.from_numpy(rows[found] / scale).to(table)


def own_vocab(
    corpus: TaggingCorpus, cfg: TaggerDataConfig, words: list[str], vocab: TaggerVocab | None
) -> TaggerVocab:
    """The vocabularies of the training split (and the vectors' words); on resume the
    checkpoint's, which must equal them."""
    try:
        fresh = TaggerVocab.build(
            corpus.sentences("train"), min_count=cfg.min_count, max_size=cfg.max_size
        )
    except ValueError as err:
        raise ElmanError(f"[data]: {err}") from None
    if words:
        fresh = fresh.extend(words)  # unseen words found in the vectors keep their vector
    if vocab is not None and vocab != fresh:
        raise ElmanError(
            f"the checkpoint's vocabularies do not match the ones built from {corpus.name}"
            "/train" + (f" and {cfg.vectors}" if cfg.vectors else "")
            + "; resume with the data it was trained on"
        )  # fmt: skip
    return vocab or fresh


def inherited_vocab(
    corpus: TaggingCorpus, cfg: TaggerDataConfig, vocab: TaggerVocab | None
) -> tuple[TaggerVocab, VocabReport]:
    """The vocabularies of ``cfg.vocab_from`` (or ``vocab``, a resume's), kept or extended by
    the training words, characters and tags they lack, and how the data fits them. Kept, a
    training tag outside the tag set is refused (the model has no output row for it)."""
    if vocab is None:  # a new run: the other checkpoint's (a resume passes the run's own)
        payload = vocab_source(cfg.vocab_from or "", "tagger")
        column = payload["recipe"].get("data", {}).get("column", "upos")
        check_same("data.vocab_from", cfg.vocab_from, column, cfg.column, "data.column")
        vocab = TaggerVocab.from_dict(payload["vocab"])
    train = corpus.sentences("train")
    fresh = TaggerVocab.build(train, min_count=cfg.min_count)
    if cfg.extend_vocab:
        run = extended_vocab(vocab, fresh, cfg.max_size)
    else:
        new_tags = [t for t in fresh.tags.itos if t not in vocab.tags.stoi]
        if new_tags:
            raise ElmanError(
                f"the training data of {corpus.name} has tags that the tag set of "
                f"{cfg.vocab_from} lacks ({', '.join(new_tags)}); set data.extend_vocab = true "
                "to give them output rows, or retag them in the data"
            )
        run = vocab
    forms = [f for s in train for f in s.forms]
    count, before = outside(forms, vocab.words.stoi)
    oov = {"train": share(outside(forms, run.words.stoi)[1], count)}
    for split in ("valid", "test"):
        n, unknown = outside((f for s in corpus.sentences(split) for f in s.forms), run.words.stoi)
        oov[split] = share(unknown, n)
    added = {k: len(getattr(run, k)) - len(getattr(vocab, k)) for k in ("words", "chars", "tags")}
    report = VocabReport(
        cfg.vocab_from or "", cfg.extend_vocab, len(run.words), added, "words", count,
        share(before, count), oov,
    )  # fmt: skip
    return run, report


def extended_vocab(vocab: TaggerVocab, fresh: TaggerVocab, max_size: int | None) -> TaggerVocab:
    """``vocab`` with the entries of ``fresh`` it lacks appended to each of its vocabularies
    (old ids keep their places), at most ``max_size`` words in all."""

    def more(old: Vocabulary, new: Vocabulary, limit: int | None = None) -> Vocabulary:
        extra = [t for t in new.itos if t not in old.stoi]
        if limit is not None:
            extra = extra[: max(0, limit - len(old))]
        return Vocabulary([*old.itos, *extra])

    return TaggerVocab(
        words=more(vocab.words, fresh.words, max_size),
        chars=more(vocab.chars, fresh.chars),
        tags=more(vocab.tags, fresh.tags),
        train_size=vocab.train_size,  # None: every word is a training form, the new ones too
    )


def members(loaded: Loaded) -> list[Member]:
    """``loaded`` and its ensemble as (tagger, vocabularies) pairs."""
    return [(m.model, m.vocab) for m in (loaded, *loaded.ensemble)]


def predict_split(
    ensemble: Sequence[Member],
    corpus: TaggingCorpus,
    split: str,
    batch_size: int,
    device: torch.device,
) -> tuple[list[list[str]], float, int]:
    """Predicted tags of every sentence of ``split`` (in file order), the summed cross entropy
    −Σ_t log ŷ_{t, y_t} over the words whose gold tag is known, and their number."""
    sentences = corpus.sentences(split)
    forms = [s.forms for s in sentences]
    what = f"tagging {corpus.name}/{split}"
    probs = tag_distributions(ensemble, forms, batch_size, device, what=what)
    tags = ensemble[0][1].tags
    loss, scored = 0.0, 0
    predicted: list[list[str]] = []
    for sentence, p in zip(sentences, probs, strict=True):
        predicted.append(tags.decode(p.argmax(dim=1)))
        gold = [(t, tags.stoi[tag]) for t, tag in enumerate(sentence.tags) if tag in tags.stoi]
        if gold:
            rows, cols = zip(*gold, strict=True)
            loss -= float(p[list(rows), list(cols)].double().log().sum())
            scored += len(gold)
    return predicted, loss, scored


def evaluate_model(
    ensemble: Sequence[Member],
    dataset: TaggingCorpus,
    split: str,
    batch_size: int,
    device: torch.device,
) -> Metrics:
    """Loss, token accuracy and unseen-word accuracy of the members' mean distribution (one
    member: the model alone) on one split; unseen means unseen by the first member."""
    start = time.perf_counter()
    predicted, loss, scored = predict_split(ensemble, dataset, split, batch_size, device)
    sentences = dataset.sentences(split)
    training_forms = ensemble[0][1].training_forms
    metrics = tagging_metrics.accuracy(
        [s.tags for s in sentences], predicted, [s.forms for s in sentences], training_forms
    )
    return {
        "loss": loss / max(scored, 1),
        **metrics,
        "tokens": scored,
        "seconds": time.perf_counter() - start,
    }


class TaggerTask(Task):
    """Bidirectional RNN part-of-speech taggers (UPOS or XPOS) with a character encoder."""

    name: ClassVar[str] = "tagger"
    recipe_type: ClassVar[type[Recipe]] = TaggerRecipe
    capabilities: ClassVar[Capabilities] = Capabilities(tag=True, ensemble=True, report=True)
    renamed: ClassVar[Renamed] = {
        "model.word_dim": lambda d: {"model.embedding_dim": d},
        "model.char_dim": lambda d: {"model.char_embedding_dim": d},
        "model.char_hidden": lambda h: {"model.char_hidden_size": h},
        "model.dropout": lambda p: {f"model.dropout_{w}": p for w in DROPOUTS},
        "model.word_dropout": lambda p: {"model.dropout_words": p},
    }

    def prepare(self, recipe: TaggerRecipe, vocab: TaggerVocab | None = None) -> Prepared:
        data_cfg = recipe.data
        corpus = resolve_tagging(data_cfg.dataset, data_cfg.column)
        for split in ("valid", "test"):  # a malformed file stops the run now, not after training
            corpus.sentences(split)
        train = corpus.sentences("train")
        words: list[str] = []
        vectors = None
        if data_cfg.vectors is not None:
            words, vectors = read_vectors(data_cfg.vectors, limit=data_cfg.vectors_limit)
        check_extension(data_cfg)
        report = None
        if data_cfg.vocab_from is None:
            vocab = own_vocab(corpus, data_cfg, words, vocab)
        else:
            vocab, report = inherited_vocab(corpus, data_cfg, vocab)
        model = build_model(recipe.model, vocab)
        if data_cfg.vectors is not None and vectors is not None:
            table = model.pretrained if model.pretrained is not None else model.embedding.weight
            init_embedding(table, vocab, words, vectors, data_cfg.vectors)
        elif recipe.model.frozen_vectors:
            raise ElmanError("model.frozen_vectors = true needs data.vectors (a vectors file)")
        batches = SentenceBatches(
            train, vocab, data_cfg.batch_size, shuffle=True, seed=recipe.train.seed
        )
        valid_device = pick_device(recipe.train.device, "train.device")

        def validate(m: torch.nn.Module) -> dict[str, float]:
            assert isinstance(m, Tagger)
            bs = data_cfg.eval_batch_size
            out = evaluate_model([(m, vocab)], corpus, "valid", bs, valid_device)
            return {k: v for k, v in out.items() if k in ("loss", "accuracy", "unseen_accuracy")}

        # under torchrun each process trains on its own sentences of every global batch
        train_data = distributed.shard_rows(batches, data_cfg.batch_size)
        return Prepared(model, train_data, validate, corpus, vocab, vocab_report=report)

    def vocab_from_dict(self, d: dict[str, Any]) -> TaggerVocab:
        return TaggerVocab.from_dict(d)

    def load(self, payload: dict[str, Any], device: torch.device) -> Loaded:
        return rebuild(
            self, payload, device, lambda recipe, vocab: build_model(recipe.model, vocab)
        )

    def dataset(self, name: str, recipe: Any) -> TaggingCorpus:
        """The corpus ``name``, read in the tag column the model was trained on."""
        return resolve_tagging(name, recipe.data.column)

    def evaluate(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> Metrics:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        return evaluate_model(members(loaded), dataset, split, bs, loaded.device)

    def summary(self, metrics: Metrics) -> str:
        m = metrics
        unseen = f"{100 * m['unseen_accuracy']:.2f}%" if m["unseen_words"] else "n/a"
        return (
            f"accuracy {100 * m['accuracy']:.2f}% | unseen words {unseen} "
            f"({m['unseen_words']} of {m['words']}) | loss {m['loss']:.4f}"
        )

    def report(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> dict[str, Any]:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        predicted, _, _ = predict_split(members(loaded), dataset, split, bs, loaded.device)
        return tagging_metrics.report([s.tags for s in dataset.sentences(split)], predicted)

    def check_ensemble(self, loaded: Loaded, member: Loaded) -> None:
        """Every member must predict the same tag set, in the same order, as the first model."""
        if member.vocab.tags != loaded.vocab.tags:
            raise ElmanError(
                f"--ensemble {member.path}: its tag set ({len(member.vocab.tags)} tags) differs "
                f"from the first model's ({len(loaded.vocab.tags)}); ensemble taggers trained on "
                "the same data and column"
            )

    def tag(
        self, loaded: Loaded, sentences: Sequence[Sequence[str]], *, batch_size: int = 64
    ) -> list[list[str]]:
        ensemble = [(m.model, m.vocab) for m in loaded.ensemble]
        return tag_sentences(
            loaded.model, loaded.vocab, sentences, batch_size, loaded.device, ensemble
        )


TASK = TaggerTask()
