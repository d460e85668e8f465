"""The contract between the engine and each kind of model: the ``Task`` protocol.

A task (``lm``, ``nplm``, ``tagger``, ``translation``) owns one model's life cycle, in the
style of torchtune's recipe interface: typed members, no dicts, no ``hasattr`` probes::

    recipe   = task.recipe_type  parsed from TOML         (elman.train.recipe)
    prepared = task.prepare(recipe, vocab=None)           -> Prepared: model, data, validation
    Trainer(prepared.model, recipe.train, prepared.train_data, prepared.validate, …).fit()
    loaded   = task.load(checkpoint payload, device)      -> Loaded: model, vocab, recipe
    dataset  = task.dataset(name, loaded.recipe)
    metrics  = task.evaluate(loaded, dataset, split)      -> dict of numbers (results files)
    task.summary(metrics)                                 -> one line for people

What else a task can do is said by ``task.capabilities`` (generate text, tag, translate, be
mixed with an n-gram model, ensemble, report per class); the matching methods of the protocol
raise a one-line ElmanError in a task that lacks them, and callers check the capability first
(:meth:`Loaded.require`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from elman.errors import ElmanError
from elman.inference.cache import CacheStates
from elman.inference.dynamic import DynamicSettings
from elman.inference.search import DecodeConfig
from elman.tasks.finetuning import VocabReport
from elman.train.checkpoint import build_checked
from elman.train.recipe import Recipe, Renamed, parse_sections

if TYPE_CHECKING:
    from elman.inference.translate import Translation

Metrics = dict[str, Any]  # a split's numbers, as results files and `elman eval --json` hold them


@dataclass(frozen=True)
class Capabilities:
    """What a task's models can do beyond training and evaluation."""

    generate: bool = False  # sample text after a prompt (elman generate)
    tag: bool = False  # tag words (elman tag)
    translate: bool = False  # translate lines (elman translate)
    mix: bool = False  # log P of every token of a split in corpus order (n-gram mixtures)
    ensemble: bool = False  # average several models' distributions (elman eval --ensemble)
    report: bool = False  # per-class precision, recall, F1 and confusions (elman eval --report)
    cache: bool = False  # the neural cache over its recent hidden states (elman eval --cache)
    dynamic: bool = False  # learn on the text while scoring it (elman eval --dynamic)

    def names(self) -> list[str]:
        return [name for name, able in vars(self).items() if able]


@dataclass
class Prepared:
    """What a task hands the trainer for one run (``Task.prepare``)."""

    model: nn.Module
    train_data: Any  # len(data) batches per epoch and data.iter_from(i) (elman.train.trainer)
    validate: Callable[[nn.Module], dict[str, float]]  # the per-epoch numbers; "loss" decides
    dataset: Any  # the corpus the run reads (valid and test are evaluated from it at the end)
    vocab: Any  # the vocabularies (each with to_dict / from_dict), stored in checkpoints
    level: str | None = None  # language models: "word" or "char" (bits per character)
    # with data.vocab_from (or --init-from): how the data fits that checkpoint's vocabulary
    vocab_report: VocabReport | None = None

    def checkpoint_meta(self, task: str, recipe: Recipe) -> dict[str, Any]:
        """What every checkpoint of the run stores beside the weights, to rebuild the model."""
        meta = {"task": task, "recipe": recipe.raw, "vocab": self.vocab.to_dict()}
        if self.level is not None:
            meta["level"] = self.level
        return meta


@dataclass
class Loaded:
    """A trained model rebuilt from a checkpoint, ready to be asked things (``elman.load``)."""

    task: Task
    model: Any  # the task's nn.Module (RNNLM, NPLM, Tagger, Seq2Seq), in eval mode
    vocab: Any
    recipe: Any  # the task's Recipe subclass
    path: Path
    device: torch.device
    level: str = "word"  # language models: "word" or "char"
    ensemble: list[Loaded] = field(default_factory=list)  # more models averaged with this one
    # What is computed from the trained weights and read again, once: dynamic evaluation's RMS
    # gradient statistics, the same for every rate tried (each pass restores the weights).
    derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the kept value after."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]

    @property
    def capabilities(self) -> Capabilities:
        return self.task.capabilities

    def require(self, ability: str, command: str) -> None:
        """Stop with one line when this model cannot do what ``command`` needs."""
        require(self.task, ability, command, self.path)

    def dataset(self, data: str | None = None) -> Any:
        """The corpus ``data`` (default: the one it was trained on), read as the model reads it."""
        return self.task.dataset(data or self.recipe.data.dataset, self.recipe)

    def evaluate(
        self, split: str = "test", data: str | None = None, *, batch_size: int | None = None
    ) -> Metrics:
        """The task's metrics on ``split`` of ``data`` (``elman.evaluate`` also mixes, reports
        and writes results files)."""
        return self.task.evaluate(self, self.dataset(data), split, batch_size=batch_size)

    def generate(
        self,
        prompt: str = "",
        tokens: int = 50,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        """``prompt`` continued by ``tokens`` sampled tokens (elman.inference.generate)."""
        self.require("generate", "generate")
        return self.task.generate(
            self, prompt, tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
        )

    def tag(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 64) -> list[list[str]]:
        """The tags of every sentence (a list of words each)."""
        self.require("tag", "tag")
        return self.task.tag(self, sentences, batch_size=batch_size)

    def translate(
        self, lines: Sequence[str], *, decode: DecodeConfig | None = None, batch_size: int = 64
    ) -> list[str]:
        """The translation of every line, decoded as ``decode`` says (default: the recipe's)."""
        self.require("translate", "translate")
        return self.task.translate(self, lines, decode=decode, batch_size=batch_size)

    def translate_nbest(
        self,
        lines: Sequence[str],
        n_best: int,
        *,
        decode: DecodeConfig | None = None,
        batch_size: int = 64,
    ) -> list[list[Translation]]:
        """The ``n_best`` best translations of every line, best first, each with log P, its
        length and the score that ranks it (``decode.beam`` must be at least ``n_best``)."""
        self.require("translate", "translate")
        return self.task.translate_nbest(self, lines, n_best, decode=decode, batch_size=batch_size)


def require(task: Task, ability: str, command: str, path: str | Path) -> None:
    """Stop with one line when ``task``'s models (the one in ``path``) cannot do ``ability``."""
    if not getattr(task.capabilities, ability):
        able = ", ".join(task.capabilities.names()) or "be trained and evaluated only"
        raise ElmanError(
            f"{command} needs a model that can {ability}; {path} is a {task.name!r} model "
            f"(it can: {able})"
        )


def rebuild(
    task: Task,
    payload: dict[str, Any],
    device: torch.device,
    build: Callable[[Any, Any], nn.Module],
    *,
    any_impl: bool = True,
) -> Loaded:
    """The half every ``Task.load`` shares: the checkpoint's recipe (older key names upgraded),
    its vocabularies, and the model ``build(recipe, vocab)`` makes, checked against the stored
    weights (names, shapes, finiteness) before they are put in, in eval mode on ``device``.

    ``any_impl``: the model runs with either recurrent implementation, whichever it trained with.
    """
    recipe = parse_sections(task.recipe_type, payload["recipe"], renamed=task.renamed, upgrade=True)
    vocab = task.vocab_from_dict(payload["vocab"])
    if any_impl:
        recipe.model.impl = "auto"
    model = build_checked(lambda: build(recipe, vocab), payload)
    model.to(device).eval()
    level = payload.get("level", "word")
    return Loaded(task, model, vocab, recipe, Path(payload["path"]), device, level=level)


class Task(Protocol):
    """One kind of model's life cycle (module docstring). Tasks subclass this explicitly, so
    the methods of capabilities they lack keep the one-line refusal below."""

    name: ClassVar[str]  # the recipe's [recipe] task and the checkpoint's "task"
    recipe_type: ClassVar[type[Recipe]]
    capabilities: ClassVar[Capabilities]
    renamed: ClassVar[Renamed]  # old recipe keys -> their new keys (elman.train.recipe)

    def prepare(self, recipe: Any, vocab: Any = None) -> Prepared:
        """Model, training data and validation for ``recipe``; on resume, ``vocab`` is the
        checkpoint's (it must equal a fresh build from the data). With ``data.vocab_from``
        (set by ``--init-from``) the vocabulary is that checkpoint's, or ``vocab`` when given,
        kept or extended as the task allows (elman.tasks.finetuning), and ``vocab_report``
        says how the data fits it."""
        ...

    def vocab_from_dict(self, d: dict[str, Any]) -> Any:
        """The vocabularies a checkpoint stores (``Prepared.vocab.to_dict()``)."""
        ...

    def load(self, payload: dict[str, Any], device: torch.device) -> Loaded:
        """The model, vocabularies and recipe of a checkpoint, on ``device``, in eval mode."""
        ...

    def dataset(self, name: str, recipe: Any) -> Any:
        """The corpus ``name`` read as a model of ``recipe`` reads it (e.g. its tag column)."""
        ...

    def evaluate(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> Metrics:
        """The task's metrics of ``loaded`` (and its ensemble) on one split of ``dataset``."""
        ...

    def summary(self, metrics: Metrics) -> str:
        """One line of a split's metrics, for people."""
        ...

    def notes(self, metrics: Metrics) -> list[str]:
        """More lines for people under the summary (e.g. sacreBLEU's signatures)."""
        return []

    # ---------------------------------------------------------------- capabilities
    def token_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> np.ndarray:
        """log P(w_t | history) of every token of ``split`` in corpus order (``mix``)."""
        raise ElmanError(f"{self.name!r} models cannot be mixed with an n-gram model")

    def cache_states(
        self, loaded: Loaded, dataset: Any, split: str, dynamic: DynamicSettings | None = None
    ) -> CacheStates:
        """ln p_model(y_t), h_t and y_t of every token of ``split`` for the neural cache
        (``cache``, :mod:`elman.inference.cache`), read by the trained model or, with
        ``dynamic``, by the model as dynamic evaluation adapts it."""
        raise ElmanError(f"{self.name!r} models have no neural cache")

    def dynamic_logprobs(
        self, loaded: Loaded, dataset: Any, split: str, settings: DynamicSettings
    ) -> np.ndarray:
        """ln p(y_t) of every token of ``split`` under dynamic evaluation (``dynamic``,
        :mod:`elman.inference.dynamic`)."""
        raise ElmanError(f"{self.name!r} models have no dynamic evaluation")

    def report(
        self, loaded: Loaded, dataset: Any, split: str, *, batch_size: int | None = None
    ) -> dict[str, Any]:
        """Per-class precision, recall, F1 and the confusion counts (``report``)."""
        raise ElmanError(f"{self.name!r} models have no per-class report")

    def check_ensemble(self, loaded: Loaded, member: Loaded) -> None:
        """Stop with one line when ``member`` cannot be averaged with ``loaded`` (``ensemble``)."""
        raise ElmanError(f"{self.name!r} models cannot be ensembled")

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
        """The prompt continued by ``tokens`` sampled tokens (``generate``)."""
        raise ElmanError(f"{self.name!r} models cannot generate text")

    def tag(
        self, loaded: Loaded, sentences: Sequence[Sequence[str]], *, batch_size: int = 64
    ) -> list[list[str]]:
        """The tags of every sentence (``tag``)."""
        raise ElmanError(f"{self.name!r} models cannot tag")

    def translate(
        self,
        loaded: Loaded,
        lines: Sequence[str],
        *,
        decode: DecodeConfig | None = None,
        batch_size: int = 64,
    ) -> list[str]:
        """The translation of every line (``translate``; ``decode`` default: the recipe's)."""
        raise ElmanError(f"{self.name!r} models cannot translate")

    def translate_nbest(
        self,
        loaded: Loaded,
        lines: Sequence[str],
        n_best: int,
        *,
        decode: DecodeConfig | None = None,
        batch_size: int = 64,
    ) -> list[list[Translation]]:
        """The ``n_best`` best translations of every line, best first (``translate``)."""
        raise ElmanError(f"{self.name!r} models cannot translate")
