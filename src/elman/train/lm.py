"""The language-modelling task: a corpus, its vocabulary, BPTT streams and an RNN LM.

Perplexity convention (shared with the NPLM and the n-gram models): every token of the evaluated
split is predicted exactly once, ``<eos>`` included, the stream starting as if after a sentence
end; PPL = exp(J) with J the mean cross entropy over those tokens. Character corpora also report
bits per character, J / ln 2.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from elman.data.batching import BPTTStream
from elman.data.datasets import Dataset, resolve
from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.train import distributed
from elman.train.trainer import TrainConfig, evaluate_loss, pick_device


@dataclass
class LMDataConfig:
    dataset: str = "ptb"  # a name (`elman data list`) or a folder with train/valid/test.txt
    batch_size: int = 20  # B columns of the training stream
    bptt: int = 35  # truncation length T
    eval_batch_size: int = 1  # 1 gives every token its full left context (as the papers do)
    min_count: int = 1
    max_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "bptt", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


SECTIONS = {"data": LMDataConfig, "model": RNNLMConfig, "train": TrainConfig}


def build_vocab(dataset: Dataset, cfg: Any) -> Vocabulary:
    """The vocabulary of the training split only (``cfg``: ``min_count``, ``max_size``)."""
    try:
        return Vocabulary.build(
            dataset.tokens("train"),
            min_count=cfg.min_count,
            max_size=cfg.max_size,
            specials=dataset.specials,
        )
    except ValueError as err:  # e.g. max_size below the number of special tokens
        raise ElmanError(f"[data]: {err}") from None


def encode_split(vocab: Vocabulary, dataset: Dataset, split: str) -> torch.Tensor:
    """The ids of one split, shape (N,); warns when over 1% of valid/test tokens are unknown."""
    tokens = dataset.tokens(split)
    ids = vocab.encode(tokens)
    if split != "train":
        unknown = int((ids == vocab.unk_index).sum()) - sum(t == "<unk>" for t in tokens)
        if unknown > 0.01 * len(tokens):
            warnings.warn(
                f"{unknown} of {len(tokens)} tokens of {dataset.name}/{split} are not in the "
                "model's vocabulary and count as <unk>",
                stacklevel=3,
            )
    return ids


def checked_vocab(dataset: Dataset, cfg: Any, vocab: Vocabulary | None) -> Vocabulary:
    """The training vocabulary; on resume, the checkpoint's, which must equal a fresh build.

    ``cfg`` is any data config with ``min_count`` and ``max_size`` (the LM's or the NPLM's).
    """
    fresh = build_vocab(dataset, cfg)
    if vocab is not None and vocab != fresh:
        raise ElmanError(
            f"the checkpoint's vocabulary ({len(vocab)} entries) does not match the one built "
            f"from {dataset.name}/train ({len(fresh)}); resume with the dataset it was trained on"
        )
    return vocab or fresh


def make_stream(
    vocab: Vocabulary, dataset: Dataset, split: str, batch_size: int, bptt: int
) -> BPTTStream:
    ids = encode_split(vocab, dataset, split)
    return BPTTStream(ids, batch_size, bptt, start_id=vocab.eos_index)


def build_model(
    model_cfg: RNNLMConfig, vocab: Vocabulary, counts: torch.Tensor | None = None
) -> RNNLM:
    """The recipe's model over ``vocab``; ``counts`` places the class softmax's bins."""
    model_cfg.vocab_size = len(vocab)
    try:
        return RNNLM(model_cfg, counts)
    except ValueError as err:
        raise ElmanError(f"[model]: {err}") from None


def metrics_from_loss(loss: float, tokens: int, level: str) -> dict[str, float]:
    out = {"loss": loss, "ppl": math.exp(min(loss, 700)), "tokens": tokens}
    if level == "char":
        out["bpc"] = loss / math.log(2)
    return out


def evaluate(
    model: RNNLM,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
    bptt: int = 35,
) -> dict[str, float]:
    """Perplexity (and bpc) of ``model`` on one split, every token scored once."""
    start = time.perf_counter()
    stream = make_stream(vocab, dataset, split, batch_size, bptt)
    result = evaluate_loss(model, stream, device)
    metrics = metrics_from_loss(result["loss"], result["tokens"], dataset.level)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


@torch.no_grad()
def split_logprobs(
    model: RNNLM,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
    bptt: int = 35,
) -> np.ndarray:
    """log P(w_t | w_<t) of every token of ``split``, in corpus order (for mixtures).

    The stream's columns hold consecutive stretches of the corpus, so the (L, B) grid of
    per-position scores read column by column is the corpus order.
    """
    stream = make_stream(vocab, dataset, split, batch_size, bptt).to(device)
    model.eval()
    state, rows = None, []
    for batch in stream:
        logits, state = model(batch.inputs, state)  # (T, B, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        target = batch.targets.clamp(min=0).unsqueeze(-1)  # padding (-100) gathers id 0
        rows.append(logp.gather(-1, target).squeeze(-1))  # (T, B)
    grid = torch.cat(rows)  # (L, B)
    return grid.t().reshape(-1)[: stream.total_tokens].double().cpu().numpy()


def prepare(recipe: Any, vocab: Vocabulary | None = None) -> dict[str, Any]:
    """Everything the trainer needs: model, training stream, validation function, metadata."""
    data_cfg: LMDataConfig = recipe.data
    dataset = resolve(data_cfg.dataset)
    # A missing, empty or non-UTF-8 valid/test file stops the run now, not after training.
    for split in ("valid", "test"):
        dataset.tokens(split)
    vocab = checked_vocab(dataset, data_cfg, vocab)
    train_stream = make_stream(vocab, dataset, "train", data_cfg.batch_size, data_cfg.bptt)
    targets = train_stream.targets[train_stream.targets >= 0]  # the training tokens
    model = build_model(recipe.model, vocab, torch.bincount(targets, minlength=len(vocab)))
    # Under torchrun each process trains on its own columns of the same B-column stream.
    train_stream = distributed.shard_columns(train_stream, "data.batch_size")
    valid_device = pick_device(recipe.train.device)

    def validate(m: RNNLM) -> dict[str, float]:
        return evaluate(
            m, vocab, dataset, "valid", data_cfg.eval_batch_size, valid_device, data_cfg.bptt
        )

    return {
        "model": model,
        "train_data": train_stream,
        "evaluate": validate,
        "meta": {
            "task": "lm",
            "recipe": recipe.raw,
            "vocab": vocab.to_dict(),
            "level": dataset.level,
        },
        "dataset": dataset,
        "vocab": vocab,
    }


def load(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Rebuild the model, vocabulary and recipe stored in a checkpoint."""
    from elman.train.checkpoint import load_weights
    from elman.train.recipe import parse_recipe

    recipe = parse_recipe(payload["recipe"])
    vocab = Vocabulary.from_dict(payload["vocab"])
    recipe.model.impl = "auto"  # a model trained with one impl runs with the other
    model = build_model(recipe.model, vocab)
    load_weights(model, payload).to(device).eval()
    return {"model": model, "vocab": vocab, "recipe": recipe, "level": payload.get("level", "word")}


def encode_prompt(text: str, vocab: Vocabulary, level: str) -> tuple[list[int], list[str]]:
    """Prompt text → ids, starting after an <eos> when the vocabulary has one; also the unknowns."""
    if level == "word":
        tokens = text.split()
    else:
        # PTB-char writes a word boundary as "_"; raw character corpora keep the space.
        tokens = [("_" if c == " " and " " not in vocab and "_" in vocab else c) for c in text]
    start = [vocab.eos_index] if vocab.eos_index is not None else []
    if not tokens and not start:
        tokens = ["\n"] if "\n" in vocab else [vocab[len(vocab) - 1]]
    unknown = [t for t in tokens if t not in vocab]
    return start + vocab.encode(tokens).tolist(), unknown


def decode_text(ids: list[int], vocab: Vocabulary, level: str) -> str:
    """Generated ids → text: <eos> becomes a line break; PTB-char's "_" a space."""
    tokens = vocab.decode(ids)
    if level == "word":
        return " ".join(tokens).replace(" <eos> ", "\n").replace("<eos>", "\n")
    text = "".join("\n" if t == "<eos>" else t for t in tokens)
    return text.replace("_", " ") if " " not in vocab and "_" in vocab else text
