"""The tagging task: a CoNLL-U corpus, its vocabularies, sentence batches and a BiRNN tagger.

Trained with the shared trainer (the tagger's ``loss`` is the summed cross entropy over the real
words of a batch; no state is carried between batches); the validation loss picks ``best.pt``
and drives the schedule and early stopping. Reported: token accuracy on the split, accuracy on
the words whose form never occurs in training (``unseen_accuracy``; exactly that when the word
vocabulary keeps every training form, ``min_count = 1`` and no ``max_size``), and with
:func:`report` per-tag precision/recall/F1 and the confusion counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from elman.data.tagging import (
    SentenceBatches,
    TaggerVocab,
    TaggingCorpus,
    by_length,
    make_batch,
    resolve_tagging,
)
from elman.data.vectors import lookup, read_vectors
from elman.errors import ElmanError
from elman.models.tagger import Tagger, TaggerConfig, build_tagger
from elman.train import distributed, tagging_metrics
from elman.train.trainer import TrainConfig, pick_device


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

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.column not in ("upos", "xpos"):
            raise ValueError(f"column {self.column!r} unknown; valid: upos, xpos")

    @property
    def bptt(self) -> int:
        """Unused (sentences stand alone); the shared ``evaluate`` signature passes it."""
        return 0


SECTIONS = {"data": TaggerDataConfig, "model": TaggerConfig, "train": TrainConfig}


def vocab_from_dict(d: dict[str, Any]) -> TaggerVocab:
    return TaggerVocab.from_dict(d)


def resolve_dataset(name: str, recipe: Any) -> TaggingCorpus:
    """The corpus ``name``, read in the tag column the model was trained on."""
    return resolve_tagging(name, recipe.data.column)


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
    table: torch.Tensor, vocab: TaggerVocab, words: list[str], vectors, source: str
) -> None:
    """Fill the rows of ``table`` (V, D) found in the pretrained vectors, scaled to std 1
    (the spread of torch's N(0, 1) embedding init); other rows keep their values."""
    if vectors.shape[1] != table.shape[1]:
        raise ElmanError(
            f"{source}: vectors of dimension {vectors.shape[1]}, but model.word_dim = "
            f"{table.shape[1]}; set model.word_dim = {vectors.shape[1]}"
        )
    rows, found = lookup(vocab.words.itos, words, vectors)
    found[0] = False  # <pad> stays zero
    if found.any():
        scale = float(rows[found].std()) or 1.0
        mask = torch.from_numpy(found)
        table[mask] = torch.from_numpy(rows[found] / scale).to(table)


Member = tuple[Tagger, TaggerVocab]  # a trained tagger and the vocabularies it reads


def check_ensemble(vocab: TaggerVocab, ensemble: Sequence[Member], names: Sequence[str]) -> None:
    """Every member must predict the same tag set, in the same order, as the first model."""
    for (_, other), name in zip(ensemble, names, strict=True):
        if other.tags != vocab.tags:
            raise ElmanError(
                f"--ensemble {name}: its tag set ({len(other.tags)} tags) differs from the first "
                f"model's ({len(vocab.tags)}); ensemble taggers trained on the same data and column"
            )


def load_ensemble(paths: Sequence[str], vocab: TaggerVocab, device: torch.device) -> list[Member]:
    """The taggers in ``paths`` (checkpoints or run folders), checked against ``vocab``'s tags."""
    from elman.train.checkpoint import load_task_checkpoint

    members = []
    for path in paths:
        payload = load_task_checkpoint(path, "tagger", "--ensemble", map_location=device)
        loaded = load(payload, device)
        members.append((loaded["model"], loaded["vocab"]))
    check_ensemble(vocab, members, paths)
    return members


@torch.no_grad()
def tag_distributions(
    members: Sequence[Member],
    sentences: Sequence[Sequence[str]],
    batch_size: int,
    device: torch.device | str,
) -> list[torch.Tensor]:
    """ŷ_t of every word, shape (n_i, K) per sentence (K tags; (0, K) for an empty one).

    With M members it is the mean of their distributions, ŷ_t = (1/M) Σ_m ŷ_t^(m): each
    member reads the sentences through its own vocabularies (they may differ, e.g. with other
    pretrained vectors); the tag sets must be equal (:func:`check_ensemble`). Sentences are
    batched in sorted-length order; padding never changes a prediction.
    """
    num_tags = len(members[0][1].tags)
    out: list[torch.Tensor] = [torch.zeros(len(s), num_tags) for s in sentences]
    batches = by_length([len(s) for s in sentences], batch_size)
    for model, vocab in members:
        was_training = model.training
        model.eval()
        for ids in batches:
            batch = make_batch([sentences[i] for i in ids], vocab, index=ids).to(device)
            probs = model(batch).softmax(dim=2).cpu()  # (B, T, K)
            for i, row, n in zip(ids, probs, batch.lengths.tolist(), strict=True):
                out[i] += row[:n] / len(members)
        model.train(was_training)
    return out


def predict_split(
    model: Tagger,
    vocab: TaggerVocab,
    corpus: TaggingCorpus,
    split: str,
    batch_size: int,
    device,
    ensemble: Sequence[Member] = (),
) -> tuple[list[list[str]], float, int]:
    """Predicted tags of every sentence of ``split`` (in file order), the summed cross entropy
    −Σ_t log ŷ_{t, y_t} over the words whose gold tag is known, and their number."""
    sentences = corpus.sentences(split)
    probs = tag_distributions(
        [(model, vocab), *ensemble], [s.forms for s in sentences], batch_size, device
    )
    stoi = vocab.tags.stoi
    loss, scored = 0.0, 0
    predicted: list[list[str]] = []
    for sentence, p in zip(sentences, probs, strict=True):
        predicted.append(vocab.tags.decode(p.argmax(dim=1)))
        gold = [(t, stoi[tag]) for t, tag in enumerate(sentence.tags) if tag in stoi]
        if gold:
            rows, cols = zip(*gold, strict=True)
            loss -= float(p[list(rows), list(cols)].double().log().sum())
            scored += len(gold)
    return predicted, loss, scored


def evaluate(
    model: Tagger,
    vocab: TaggerVocab,
    dataset: TaggingCorpus,
    split: str,
    batch_size: int,
    device: torch.device,
    bptt: int = 0,
    ensemble: Sequence[Member] = (),
) -> dict[str, float]:
    """Loss, token accuracy and unseen-word accuracy of ``model`` (with ``ensemble``: of the
    members' mean distribution) on one split."""
    start = time.perf_counter()
    predicted, loss, scored = predict_split(
        model, vocab, dataset, split, batch_size, device, ensemble
    )
    sentences = dataset.sentences(split)
    metrics = tagging_metrics.accuracy(
        [s.tags for s in sentences], predicted, [s.forms for s in sentences], vocab.training_forms
    )
    return {
        "loss": loss / max(scored, 1),
        **metrics,
        "tokens": scored,
        "seconds": time.perf_counter() - start,
    }


def report(
    model: Tagger,
    vocab: TaggerVocab,
    dataset: TaggingCorpus,
    split: str,
    batch_size: int,
    device: torch.device,
    ensemble: Sequence[Member] = (),
) -> dict[str, Any]:
    """Per-tag precision/recall/F1 and the confusion counts on one split."""
    predicted, _, _ = predict_split(model, vocab, dataset, split, batch_size, device, ensemble)
    return tagging_metrics.report([s.tags for s in dataset.sentences(split)], predicted)


def summary_line(m: dict[str, Any]) -> str:
    """One line of a split's metrics, for people."""
    unseen = f"{100 * m['unseen_accuracy']:.2f}%" if m["unseen_words"] else "n/a"
    return (
        f"accuracy {100 * m['accuracy']:.2f}% | unseen words {unseen} "
        f"({m['unseen_words']} of {m['words']}) | loss {m['loss']:.4f}"
    )


def prepare(recipe: Any, vocab: TaggerVocab | None = None) -> dict[str, Any]:
    """Everything the trainer needs: model, training batches, validation function, metadata."""
    data_cfg: TaggerDataConfig = recipe.data
    corpus = resolve_tagging(data_cfg.dataset, data_cfg.column)
    for split in ("valid", "test"):  # a malformed file stops the run now, not after training
        corpus.sentences(split)
    train = corpus.sentences("train")
    try:
        fresh = TaggerVocab.build(train, min_count=data_cfg.min_count, max_size=data_cfg.max_size)
    except ValueError as err:
        raise ElmanError(f"[data]: {err}") from None
    words, vectors = (None, None)
    if data_cfg.vectors is not None:
        words, vectors = read_vectors(data_cfg.vectors, limit=data_cfg.vectors_limit)
        fresh = fresh.extend(words)  # unseen words found in the vectors keep their vector
    if vocab is not None and vocab != fresh:
        raise ElmanError(
            f"the checkpoint's vocabularies do not match the ones built from {corpus.name}/train"
            + (f" and {data_cfg.vectors}" if data_cfg.vectors else "")
            + "; resume with the data it was trained on"
        )
    vocab = vocab or fresh
    model = build_model(recipe.model, vocab)
    if vectors is not None:
        table = model.pretrained if model.pretrained is not None else model.embedding.weight
        init_embedding(table, vocab, words, vectors, data_cfg.vectors)
    elif recipe.model.frozen_vectors:
        raise ElmanError("model.frozen_vectors = true needs data.vectors (a vectors file)")
    batches = SentenceBatches(
        train, vocab, data_cfg.batch_size, shuffle=True, seed=recipe.train.seed
    )
    valid_device = pick_device(recipe.train.device)

    def validate(m: Tagger) -> dict[str, float]:
        out = evaluate(m, vocab, corpus, "valid", data_cfg.eval_batch_size, valid_device)
        return {k: v for k, v in out.items() if k in ("loss", "accuracy", "unseen_accuracy")}

    return {
        "model": model,
        # under torchrun each process trains on its own sentences of every global batch
        "train_data": distributed.shard_rows(batches, data_cfg.batch_size),
        "evaluate": validate,
        "meta": {"task": "tagger", "recipe": recipe.raw, "vocab": vocab.to_dict()},
        "dataset": corpus,
        "vocab": vocab,
    }


def load(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Rebuild the tagger, its vocabularies and recipe stored in a checkpoint."""
    from elman.train.checkpoint import load_weights
    from elman.train.recipe import parse_recipe

    recipe = parse_recipe(payload["recipe"])
    vocab = TaggerVocab.from_dict(payload["vocab"])
    recipe.model.impl = "auto"  # a model trained with one impl runs with the other
    model = build_model(recipe.model, vocab)
    load_weights(model, payload).to(device).eval()
    return {"model": model, "vocab": vocab, "recipe": recipe}
