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
from itertools import islice
from typing import Any, ClassVar

import numpy as np
import torch

from elman.data.batching import BPTTStream
from elman.data.datasets import Dataset, resolve
from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError
from elman.inference.cache import CacheStates, StateRecorder
from elman.inference.dynamic import DynamicSettings, segment_loss
from elman.inference.generate import generate_text
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.progress import Counted, Progress
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
from elman.train.recipe import Recipe, Renamed
from elman.train.trainer import evaluate_loss, pick_device


@dataclass
class LMDataConfig:
    # a name (`elman data list`), a folder with train/valid/test.txt, or one text file (cut
    # 90/5/5 in order, or the training text when `valid` and `test` name files)
    dataset: str = "ptb"
    level: str | None = None  # your own data: "word" (default) or "char" (bits per character)
    valid: str | None = None  # with one training file: its validation file
    test: str | None = None  # and its test file
    batch_size: int = 20  # B columns of the training stream
    bptt: int = 35  # truncation length T
    eval_batch_size: int = 1  # 1 gives every token its full left context (as the papers do)
    min_count: int = 1
    max_size: int | None = None
    # another run's vocabulary (a checkpoint or run folder; --init-from sets it), kept or with
    # extend_vocab extended by the training words it lacks (docs/lm.md, "Fine-tuning")
    vocab_from: str | None = None
    extend_vocab: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "bptt", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.level not in (None, "word", "char"):
            raise ValueError(f"level {self.level!r} unknown; valid: word, char")


@dataclass
class LMRecipe(Recipe):
    data: LMDataConfig
    model: RNNLMConfig


def resolve_data(cfg: Any, name: str | None = None) -> Dataset:
    """The corpus of a data config (``cfg.dataset``, or ``name`` instead), with its own
    ``level`` and ``valid``/``test`` files where the config has them."""
    if name is not None and name != cfg.dataset:  # another corpus: its own files only
        return resolve(name, level=getattr(cfg, "level", None))
    return resolve(cfg.dataset, level=getattr(cfg, "level", None), valid=cfg.valid, test=cfg.test)


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
        unk = -1 if vocab.unk_index is None else vocab.unk_index
        unknown = int(ids.eq(unk).sum()) - sum(t == "<unk>" for t in tokens)
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


def run_vocab(
    dataset: Dataset, cfg: Any, vocab: Vocabulary | None, *, task: str, output: str
) -> tuple[Vocabulary, VocabReport | None]:
    """The run's vocabulary: built from the training split (on resume the checkpoint's, which
    must equal it), or with ``cfg.vocab_from`` that checkpoint's, kept or extended by the
    training words it lacks (``cfg.extend_vocab``; the model's ``output`` must be the full
    softmax), and how the data fits it (:mod:`elman.tasks.finetuning`)."""
    check_extension(cfg)
    if cfg.vocab_from is None:
        return checked_vocab(dataset, cfg, vocab), None
    if cfg.extend_vocab and output != "softmax":
        raise ElmanError(
            f'data.extend_vocab = true needs model.output = "softmax": the {output} softmax '
            "places every word in a frequency bin when it is built, and new words have none; "
            "keep the checkpoint's vocabulary (data.extend_vocab = false)"
        )
    if vocab is None:  # a new run: the other checkpoint's (a resume passes the run's own)
        payload = vocab_source(cfg.vocab_from, task)
        level = payload.get("level", "word")
        check_same("data.vocab_from", cfg.vocab_from, level, dataset.level, "level")
        vocab = Vocabulary.from_dict(payload["vocab"])
    tokens = dataset.tokens("train")
    run = extended_words(vocab, tokens, cfg) if cfg.extend_vocab else vocab
    count, before = outside(tokens, vocab.stoi)
    oov = {"train": share(outside(tokens, run.stoi)[1], count)}
    for split in ("valid", "test"):
        oov[split] = share(*reversed(outside(dataset.tokens(split), run.stoi)))
    unit = "words" if dataset.level == "word" else "characters"
    added = {unit: len(run) - len(vocab)}
    report = VocabReport(
        cfg.vocab_from, cfg.extend_vocab, len(run), added, unit, count, share(before, count), oov
    )
    return run, report


def extended_words(vocab: Vocabulary, tokens: list[str], cfg: Any) -> Vocabulary:
    """``vocab`` followed by the training words it lacks that occur ``cfg.min_count`` times,
    most frequent first, up to ``cfg.max_size`` entries in all (old ids keep their places)."""
    ranked = Vocabulary.build(tokens, min_count=cfg.min_count, specials=()).itos
    extra = [w for w in ranked if w not in vocab.stoi]
    if cfg.max_size is not None:
        extra = extra[: max(0, cfg.max_size - len(vocab))]
    return Vocabulary([*vocab.itos, *extra])


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


def lm_summary(metrics: Metrics) -> str:
    """``ppl 113.57 | bpc 1.2345 | 82430 tokens`` (bpc for character corpora only)."""
    bpc = f" | bpc {metrics['bpc']:.4f}" if "bpc" in metrics else ""
    return f"ppl {metrics['ppl']:8.2f}{bpc} | {metrics['tokens']} tokens"


def evaluate_model(
    model: torch.nn.Module,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
    bptt: int = 35,
) -> Metrics:
    """Perplexity (and bpc) of ``model`` on one split, every token scored once."""
    start = time.perf_counter()
    stream = make_stream(vocab, dataset, split, batch_size, bptt)
    # batch size 1 on PTB's test split is minutes on a CPU: show how far it is
    with Progress(f"evaluating {dataset.name}/{split}", len(stream), unit="batches") as progress:
        result = evaluate_loss(model, Counted(stream, progress), device)
    metrics: Metrics = metrics_from_loss(result["loss"], int(result["tokens"]), dataset.level)
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
    with Progress(f"scoring {dataset.name}/{split}", len(stream), unit="batches") as progress:
        for batch in progress.over(stream):
            logits, state = model(batch.inputs, state)  # (T, B, V)
            logp = torch.log_softmax(logits.float(), dim=-1)
            target = batch.targets.clamp(min=0).unsqueeze(-1)  # padding (-100) gathers id 0
            rows.append(logp.gather(-1, target).squeeze(-1))  # (T, B)
    grid = torch.cat(rows)  # (L, B)
    return grid.t().reshape(-1)[: stream.total_tokens].double().cpu().numpy()


class LMTask(Task):
    """RNN language models (Elman, LSTM, GRU) on word or character corpora."""

    name: ClassVar[str] = "lm"
    recipe_type: ClassVar[type[Recipe]] = LMRecipe
    capabilities: ClassVar[Capabilities] = Capabilities(
        generate=True, mix=True, cache=True, dynamic=True
    )
    renamed: ClassVar[Renamed] = {}

    def prepare(self, recipe: LMRecipe, vocab: Vocabulary | None = None) -> Prepared:
        data_cfg = recipe.data
        dataset = resolve_data(data_cfg)
        # A missing, empty or non-UTF-8 valid/test file stops the run now, not after training.
        for split in ("valid", "test"):
            dataset.tokens(split)
        vocab, report = run_vocab(
            dataset, data_cfg, vocab, task=self.name, output=recipe.model.output
        )
        train_stream = make_stream(vocab, dataset, "train", data_cfg.batch_size, data_cfg.bptt)
        targets = train_stream.targets[train_stream.targets >= 0]  # the training tokens
        model = build_model(recipe.model, vocab, torch.bincount(targets, minlength=len(vocab)))
        # Under torchrun each process trains on its own columns of the same B-column stream.
        train_stream = distributed.shard_columns(train_stream, "data.batch_size")
        valid_device = pick_device(recipe.train.device, "train.device")

        def validate(m: torch.nn.Module) -> dict[str, float]:
            bs, bptt = data_cfg.eval_batch_size, data_cfg.bptt
            return evaluate_model(m, vocab, dataset, "valid", bs, valid_device, bptt)

        return Prepared(
            model, train_stream, validate, dataset, vocab, level=dataset.level, vocab_report=report
        )

    def vocab_from_dict(self, d: dict[str, Any]) -> Vocabulary:
        return Vocabulary.from_dict(d)

    def load(self, payload: dict[str, Any], device: torch.device) -> Loaded:
        return rebuild(
            self, payload, device, lambda recipe, vocab: build_model(recipe.model, vocab)
        )

    def dataset(self, name: str, recipe: Any) -> Dataset:
        return resolve_data(recipe.data, name)

    def evaluate(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> Metrics:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        bptt = loaded.recipe.data.bptt
        return evaluate_model(loaded.model, loaded.vocab, dataset, split, bs, loaded.device, bptt)

    def summary(self, metrics: Metrics) -> str:
        return lm_summary(metrics)

    def dynamic_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, settings: DynamicSettings
    ) -> np.ndarray:
        return self._adapt(loaded, dataset, split, settings, segment_loss)

    def _adapt(
        self, loaded: Loaded, dataset: Any, split: str, settings: DynamicSettings, scores: Any
    ) -> np.ndarray:
        """Dynamic evaluation of ``split``, each segment read by ``scores``."""
        from elman.inference.dynamic import dynamic_logprobs, gradient_rms

        segment = settings.segment or loaded.recipe.data.bptt
        rms = None
        if settings.rule == "rms" and settings.lr > 0:  # rate 0 (the static scores): no steps

            def statistics() -> list[torch.Tensor]:
                train = make_stream(loaded.vocab, dataset, "train", 1, segment).to(loaded.device)
                n = min(len(train), math.ceil(settings.stats_tokens / segment))
                with Progress(f"gradient statistics on {dataset.name}/train", n) as progress:
                    return gradient_rms(loaded.model, progress.over(islice(train, n)))

            key = ("gradient_rms", dataset.name, segment, settings.stats_tokens)
            rms = loaded.once(key, statistics)
        stream = make_stream(loaded.vocab, dataset, split, 1, segment).to(loaded.device)
        with Progress(f"dynamic evaluation of {dataset.name}/{split}", len(stream)) as progress:
            return dynamic_logprobs(
                loaded.model, progress.over(stream), stream.total_tokens, settings.lr,
                settings.decay, rms=rms, eps=settings.eps, scores=scores,
            )  # fmt: skip

    def cache_states(
        self, loaded: Loaded, dataset: Any, split: str, dynamic: DynamicSettings | None = None
    ) -> CacheStates:
        # the trained model's states are those of a pass at rate 0 (no step, no graph)
        recorder = StateRecorder()
        settings = dynamic or DynamicSettings(0.0)
        return recorder.recorded(self._adapt(loaded, dataset, split, settings, recorder))

    def token_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> np.ndarray:
        bs = batch_size or loaded.recipe.data.eval_batch_size
        bptt = loaded.recipe.data.bptt
        return split_logprobs(loaded.model, loaded.vocab, dataset, split, bs, loaded.device, bptt)

    def generate(
        self,
        loaded: Loaded,
        prompt: str,
        tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        return generate_text(
            loaded.model, loaded.vocab, loaded.level, prompt, tokens, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed, device=loaded.device,
        )  # fmt: skip


TASK = LMTask()
