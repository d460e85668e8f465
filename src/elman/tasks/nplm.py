"""The feed-forward language-modelling task: a corpus, context windows and Bengio's NPLM.

Same corpora, vocabulary and perplexity convention as the RNN LMs (:mod:`elman.tasks.lm`, whose
helpers this task reuses): every token of the split is predicted once, ``<eos>`` included, the
context before the first token padded with ``<eos>`` (the stream starts as if after a sentence
end). Training draws the windows in a fresh random order every epoch; evaluation walks them in
order. The model carries no state between batches.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar

import numpy as np
import torch

from elman.data.datasets import Dataset
from elman.data.vocabulary import Vocabulary
from elman.data.windows import ContextWindows
from elman.errors import ElmanError
from elman.inference.dynamic import (
    DEFAULT_SEGMENT,
    DynamicSettings,
    dynamic_logprobs,
    gradient_rms,
    window_scores,
)
from elman.models.nplm import NPLM, NPLMConfig, build_nplm
from elman.progress import Counted, Progress
from elman.tasks.lm import (
    encode_split,
    lm_summary,
    metrics_from_loss,
    resolve_data,
    run_vocab,
)
from elman.tasks.protocol import Capabilities, Loaded, Metrics, Prepared, Task, rebuild
from elman.train import distributed
from elman.train.recipe import Recipe, Renamed
from elman.train.trainer import evaluate_loss, pick_device


@dataclass
class NPLMDataConfig:
    # a name (`elman data list`), a folder with train/valid/test.txt, or one text file (cut
    # 90/5/5 in order, or the training text when `valid` and `test` name files)
    dataset: str = "ptb"
    valid: str | None = None  # with one training file: its validation file
    test: str | None = None  # and its test file
    batch_size: int = 256  # windows per training step
    eval_batch_size: int = 1024  # windows per evaluation step (any size gives the same score)
    epoch_size: int | None = None  # training windows per epoch, a fresh random subset; None: all
    min_count: int = 1
    max_size: int | None = None
    # another run's vocabulary (a checkpoint or run folder; --init-from sets it), kept or with
    # extend_vocab extended by the training words it lacks (docs/lm.md, "Fine-tuning")
    vocab_from: str | None = None
    extend_vocab: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise ValueError(f"epoch_size must be at least 1, got {self.epoch_size}")


@dataclass
class NPLMRecipe(Recipe):
    data: NPLMDataConfig
    model: NPLMConfig


def build_model(
    model_cfg: NPLMConfig, vocab: Vocabulary, counts: torch.Tensor | None = None
) -> NPLM:
    """The recipe's model over ``vocab``; ``counts`` places the class softmax's bins."""
    model_cfg.vocab_size = len(vocab)
    try:
        return build_nplm(model_cfg, counts)
    except ValueError as err:
        raise ElmanError(f"[model]: {err}") from None


def make_windows(
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    context_size: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch_size: int | None = None,
) -> ContextWindows:
    ids = encode_split(vocab, dataset, split)
    return ContextWindows(
        ids,
        context_size,
        batch_size,
        vocab.eos_index,
        shuffle=shuffle,
        seed=seed,
        epoch_size=epoch_size,
    )


def evaluate_model(
    model: NPLM,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
) -> Metrics:
    """Perplexity (and bpc) of ``model`` on one split, every token scored once."""
    start = time.perf_counter()
    windows = make_windows(vocab, dataset, split, model.context_size, batch_size)
    with Progress(f"evaluating {dataset.name}/{split}", len(windows), unit="batches") as progress:
        result = evaluate_loss(model, Counted(windows, progress), device)
    metrics: Metrics = metrics_from_loss(result["loss"], int(result["tokens"]), dataset.level)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


@torch.no_grad()
def split_logprobs(
    model: NPLM,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """log ŷ_{t, w_t} of every token of ``split`` in corpus order (for ``elman eval --mix``)."""
    model.eval()
    windows = make_windows(vocab, dataset, split, model.context_size, batch_size)
    out = []
    with Progress(f"scoring {dataset.name}/{split}", len(windows), unit="batches") as progress:
        for batch in progress.over(windows.to(device).iter_from(0)):
            logits = model(batch.contexts)  # (B, V)
            loss = torch.nn.functional.cross_entropy(logits, batch.targets, reduction="none")
            out.append(-loss)
    return torch.cat(out).double().cpu().numpy()


class NPLMTask(Task):
    """Bengio et al.'s feed-forward neural probabilistic language model."""

    name: ClassVar[str] = "nplm"
    recipe_type: ClassVar[type[Recipe]] = NPLMRecipe
    capabilities: ClassVar[Capabilities] = Capabilities(mix=True, dynamic=True)
    renamed: ClassVar[Renamed] = {
        "model.dropout": lambda p: {"model.dropout_hidden": p},
        # the trainer's autocast runs the same bfloat16 matrix products for every model now
        "model.train_dtype": lambda t: {} if t == "float32" else {"train.autocast": t},
    }

    def prepare(self, recipe: NPLMRecipe, vocab: Vocabulary | None = None) -> Prepared:
        data_cfg = recipe.data
        dataset = resolve_data(data_cfg)
        vocab, report = run_vocab(
            dataset, data_cfg, vocab, task=self.name, output=recipe.model.output
        )
        train_windows = make_windows(
            vocab,
            dataset,
            "train",
            recipe.model.context_size,
            data_cfg.batch_size,
            shuffle=True,
            seed=recipe.train.seed,
            epoch_size=data_cfg.epoch_size,
        )
        # the windows' order has its own generator: the model's initial weights are as before
        counts = torch.bincount(train_windows.ids, minlength=len(vocab))
        model = build_model(recipe.model, vocab, counts)
        valid_device = pick_device(recipe.train.device, "train.device")

        def validate(m: torch.nn.Module) -> dict[str, float]:
            assert isinstance(m, NPLM)
            bs = data_cfg.eval_batch_size
            return evaluate_model(m, vocab, dataset, "valid", bs, valid_device)

        # under torchrun each process trains on its own windows of every global batch
        train_data = distributed.shard_rows(train_windows, data_cfg.batch_size)
        return Prepared(
            model, train_data, validate, dataset, vocab, level=dataset.level, vocab_report=report
        )

    def vocab_from_dict(self, d: dict[str, Any]) -> Vocabulary:
        return Vocabulary.from_dict(d)

    def load(self, payload: dict[str, Any], device: torch.device) -> Loaded:
        return rebuild(  # no recurrent layer, so no impl to choose
            self, payload, device, lambda recipe, vocab: build_model(recipe.model, vocab),
            any_impl=False,
        )  # fmt: skip

    def dataset(self, name: str, recipe: Any) -> Dataset:
        return resolve_data(recipe.data, name)

    def evaluate(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> Metrics:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        return evaluate_model(loaded.model, loaded.vocab, dataset, split, bs, loaded.device)

    def summary(self, metrics: Metrics) -> str:
        return lm_summary(metrics)

    def token_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> np.ndarray:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        return split_logprobs(loaded.model, loaded.vocab, dataset, split, bs, loaded.device)

    def dynamic_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, settings: DynamicSettings
    ) -> np.ndarray:
        """Dynamic evaluation over the windows in corpus order, ``settings.segment`` (default
        :data:`DEFAULT_SEGMENT`) consecutive tokens per step."""
        model, vocab, n = loaded.model, loaded.vocab, loaded.model.context_size
        segment = settings.segment or DEFAULT_SEGMENT
        rms = None
        if settings.rule == "rms" and settings.lr > 0:  # rate 0 (the static scores): no steps

            def statistics() -> list[torch.Tensor]:
                train = make_windows(vocab, dataset, "train", n, segment).to(loaded.device)
                steps = min(len(train), math.ceil(settings.stats_tokens / segment))
                with Progress(f"gradient statistics on {dataset.name}/train", steps) as progress:
                    batches = progress.over(islice(train.iter_from(0), steps))
                    return gradient_rms(model, batches, scores=window_scores)

            key = ("gradient_rms", dataset.name, segment, settings.stats_tokens)
            rms = loaded.once(key, statistics)
        windows = make_windows(vocab, dataset, split, n, segment).to(loaded.device)
        with Progress(f"dynamic evaluation of {dataset.name}/{split}", len(windows)) as progress:
            return dynamic_logprobs(
                model, progress.over(windows.iter_from(0)), len(windows.ids), settings.lr,
                settings.decay, rms=rms, eps=settings.eps, scores=window_scores,
            )  # fmt: skip


TASK = NPLMTask()
