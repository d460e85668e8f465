"""Runs that start from another run: its weights (``elman train --init-from CKPT``) or only its
vocabulary (``data.vocab_from = CKPT``). docs/lm.md, "Fine-tuning".

``--init-from CKPT`` starts a new run (new data, its own recipe) at the checkpoint's weights,
with a fresh optimiser, schedule and trainer state, and the new run's own seed (nothing else of
the checkpoint is read). The model must be the checkpoint's: the same task, and the same
``[model]`` section except the keys that act only while training or at initialisation
(:data:`MAY_DIFFER`); a difference is one line listing each key, old -> new. The checkpoint's
vocabulary comes with its weights: ``--init-from`` sets ``data.vocab_from`` to the checkpoint,
and each task's ``prepare`` keeps that vocabulary and maps the new data through it, or, with
``data.extend_vocab = true`` where the task allows it, appends the new training entries:

=========== ============================================================================
lm, nplm    words kept (new ones read as ``<unk>``), or extended with the training words
            seen ``min_count`` times; extension needs ``model.output = "softmax"`` (the
            class and adaptive softmax place their bins by frequency when built)
tagger      words and characters kept or extended; a tag the checkpoint cannot predict
            is refused when kept, and gets an output row when extended
translation kept: a sentencepiece model cannot take new pieces, so the new text is cut
            into the checkpoint's pieces (an unknown character reads as ``<unk>``)
=========== ============================================================================

**New rows** (:func:`load_start_weights`): extension only appends entries, so every old id
keeps its row. A trained weight's new rows (embedding rows, output rows and biases) start at
the mean of its old rows, not at small random values. Hewitt (2021, "Initializing new word
embeddings for pretrained language models") gives the reason for the output layer: a new
word's logit is then the mean of the old logits, so by Jensen's inequality exp(mean) <= mean of
exp, each new word starts no likelier than the average old word and the old words'
distribution moves by at most KL <= log(1 + k / V) for k new words; a random row's logit near 0
would instead outrank every rare word at once (their logits are far below 0). The input rows
get the mean too: a new word starts as the average word the network already reads. The new
words still part at the first steps (their output rows get different gradients). Buffers (the
tagger's frozen pretrained vectors) keep the values a fresh run gives their new rows.

Traceability: the run's checkpoints and ``results.json`` hold ``init_from`` (the checkpoint's
path, content checksum, commit, recipe and step) and ``vocabulary`` (:class:`VocabReport`:
kept or extended, the entries added, and the share of each split's tokens read as ``<unk>``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elman.errors import ElmanError
from elman.train.checkpoint import check_parts, load_checkpoint, model_weights
from elman.train.recipe import Recipe, Renamed, parse_sections

# [model] keys an --init-from run may set otherwise: they act while training (dropout, label
# smoothing) or on initial weights the checkpoint's replace, never on the weights' layout.
MAY_DIFFER = frozenset(
    {
        "impl",
        "dropout_embedding",
        "dropout_hidden",
        "dropout_output",
        "dropout_words",
        "locked_dropout",
        "weight_dropout",
        "activation_reg",
        "temporal_activation_reg",
        "label_smoothing",
        "init_range",
        "recurrent_init_range",
    }
)
# [model] keys filled in from the vocabularies, never set by a recipe
SIZED = frozenset({"vocab_size", "char_vocab_size", "num_tags", "src_vocab_size", "tgt_vocab_size"})
WORD_LMS = frozenset({"lm", "nplm"})  # their checkpoints hold the same kind of word vocabulary


@dataclass(frozen=True)
class VocabReport:
    """How a run's data fits a vocabulary taken from another checkpoint (printed at the start,
    stored in the run's checkpoints and results.json as ``vocabulary``)."""

    source: str  # the checkpoint the vocabulary came from
    extended: bool  # data.extend_vocab: the training data's new entries were appended
    size: int  # entries of the run's vocabulary (words; translation: target pieces)
    added: dict[str, int]  # entries appended, per vocabulary ("words"; tagger "chars", "tags")
    unit: str  # what a token is: "words" or "pieces"
    train_tokens: int  # tokens of the training split
    oov_before: float  # share of them outside the checkpoint's vocabulary
    oov: dict[str, float]  # share of each split's tokens read as <unk> by the run's vocabulary

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VocabReport:
        return cls(**d)

    def line(self) -> str:
        """``vocabulary of runs/a/best.pt kept (33 words): 4.17% of the 480 training words …``"""
        rest = ", ".join(f"{s} {self.oov[s]:.2%}" for s in ("valid", "test") if s in self.oov)
        head = f"vocabulary of {self.source}"
        if not self.extended:
            return (
                f"{head} kept ({self.size} {self.unit}): {self.oov_before:.2%} of the "
                f"{self.train_tokens:,} training {self.unit} are outside it and read as <unk> "
                f"({rest})"
            )
        added = ", ".join(f"{n} {kind[:-1] if n == 1 else kind}" for kind, n in self.added.items())
        return (
            f"{head} extended by {added} to {self.size} {self.unit}: {self.oov_before:.2%} of "
            f"the {self.train_tokens:,} training {self.unit} were outside it, "
            f"{self.oov['train']:.2%} are now ({rest})"
        )


def outside(tokens: Iterable[str], known: Collection[str]) -> tuple[int, int]:
    """How many of ``tokens`` there are, and how many are not in ``known``."""
    total = unknown = 0
    for token in tokens:
        total += 1
        unknown += token not in known
    return total, unknown


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def check_extension(cfg: Any) -> None:
    """``data.extend_vocab`` extends another checkpoint's vocabulary: it needs one."""
    if cfg.extend_vocab and cfg.vocab_from is None:
        raise ElmanError(
            "data.extend_vocab = true extends the vocabulary of another checkpoint; give "
            "--init-from CKPT or data.vocab_from = CKPT (a fresh run builds its own from the data)"
        )


# ------------------------------------------------------------------ reading the checkpoint
def read_source(path: str, what: str) -> dict[str, Any]:
    """The checkpoint ``path`` names (a run folder: its best.pt; ``~`` and ``$VARS`` expanded),
    loaded, its checksum verified and its parts checked; ``what`` names the option in errors."""
    expanded = os.path.expandvars(os.path.expanduser(path))
    try:
        payload = load_checkpoint(expanded)
        check_parts(payload, ("task", "recipe", "vocab", "model"))
    except ElmanError as err:
        raise ElmanError(f"{what}: {err}") from None
    return payload


def vocab_source(path: str, task: str) -> dict[str, Any]:
    """The checkpoint of ``data.vocab_from``, which must hold the vocabulary kind of ``task``."""
    payload = read_source(path, "data.vocab_from")
    kind = payload["task"]
    if kind != task and not {kind, task} <= WORD_LMS:
        either = " (or of an 'lm' or 'nplm' model: the same word vocabulary)"
        raise ElmanError(
            f"data.vocab_from = {path} is a {kind!r} model; a {task!r} run takes the "
            f"vocabulary of a {task!r} model{either if task in WORD_LMS else ''}"
        )
    return payload


def check_same(what: str, path: str | None, theirs: Any, ours: Any, key: str) -> None:
    """Stop when the checkpoint ``path`` was trained with another value of ``key``."""
    if theirs != ours:
        raise ElmanError(
            f"{what} = {path} was trained with {key} = {theirs!r}, this recipe has {ours!r}; "
            f"its vocabulary fits the same {key} only"
        )


def model_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key (old -> new)`` for every [model] key that differs, those of MAY_DIFFER aside."""
    keys = sorted((set(old) | set(new)) - MAY_DIFFER - SIZED)
    return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in keys if old.get(k) != new.get(k)]


@dataclass
class InitSource:
    """The checkpoint a run starts from (``--init-from``): its file and its content."""

    path: str  # the checkpoint file (a run folder given: its best.pt)
    payload: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """What the run's checkpoints and results say it started from (``init_from``)."""
        trainer = self.payload.get("trainer")
        trainer = trainer if isinstance(trainer, dict) else {}
        sessions = trainer.get("sessions") or [{}]
        recipe = self.payload["recipe"].get("recipe", {})
        return {
            "path": self.path,
            "checksum": self.payload.get("checksum"),  # SHA-256 of the checkpoint's content
            "commit": sessions[0].get("commit"),  # the code that trained it
            "recipe": recipe.get("name"),
            "step": trainer.get("global_step"),
        }

    def line(self) -> str:
        r = self.record()
        checksum = f"sha256 {r['checksum'][:12]}…" if r["checksum"] else "no checksum"
        return (
            f"initialised from {r['path']} (step {r['step']}, {checksum}); fresh optimiser, "
            "schedule and trainer state"
        )


def init_source(
    path: str, recipe: Recipe, *, recipe_type: type[Recipe], renamed: Renamed
) -> InitSource:
    """The checkpoint of ``--init-from``, checked against ``recipe`` (of the task whose
    ``recipe_type`` and ``renamed`` keys are given); sets the recipe's ``data.vocab_from`` to
    it (the weights' rows are that vocabulary's)."""
    payload = read_source(path, f"--init-from {path}")
    task = recipe.info.task
    if payload["task"] != task:
        raise ElmanError(
            f"--init-from {path} is a {payload['task']!r} model; this recipe trains a {task!r} "
            "model"
        )
    source = parse_sections(recipe_type, payload["recipe"], renamed=renamed, upgrade=True)
    differ = model_differences(source.raw["model"], recipe.raw["model"])
    if differ:
        allowed = ", ".join(sorted(MAY_DIFFER))
        raise ElmanError(
            f"--init-from {path}: the recipe's [model] differs from the checkpoint's in "
            f"{', '.join(differ)}; a run that starts from its weights keeps its model (only "
            f"{allowed} may differ)"
        )
    file = payload["path"]
    given = recipe.data.vocab_from
    if given is not None and not same_file(given, file):
        raise ElmanError(
            f"--init-from {path} brings its own vocabulary (its weights' rows), but "
            f"data.vocab_from = {given} names another checkpoint; drop data.vocab_from"
        )
    recipe.data.vocab_from = file
    recipe.raw["data"]["vocab_from"] = file
    return InitSource(file, payload)


def same_file(given: str, file: str) -> bool:
    """Whether the checkpoint that ``given`` names (a run folder: its best.pt) is ``file``."""
    path = Path(os.path.expandvars(os.path.expanduser(given)))
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    try:
        return path.samefile(file)
    except OSError:
        return False


# ------------------------------------------------------------------ the starting weights
@torch.no_grad()
def load_start_weights(model: nn.Module, payload: Mapping[str, Any]) -> None:
    """Put the checkpoint's weights into ``model``, whose vocabularies may extend its own.

    A weight of the same shape is copied. One with more rows (an extended vocabulary appends
    entries, so old ids keep their rows) gets the old rows, and in its new rows the mean of the
    old rows (a parameter) or the fresh model's values (a buffer); module docstring.
    """
    path = str(payload.get("path", "?"))
    weights = model_weights(payload)  # tensors, every one finite
    state = model.state_dict()
    if set(weights) != set(state):
        odd = sorted(set(weights) ^ set(state))
        raise ElmanError(
            f"--init-from {path}: its weights do not fit the recipe's model ({odd[0]} is in "
            f"{'one' if len(odd) == 1 else f'{len(odd)} names in'} only one of them)"
        )
    trained = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    start = {
        name: grown(name, old, state[name], name in trained, path) for name, old in weights.items()
    }
    model.load_state_dict(start)


def grown(
    name: str, old: torch.Tensor, fresh: torch.Tensor, trained: bool, path: str
) -> torch.Tensor:
    """``old``, or ``old`` with the rows ``fresh`` has beyond it (module docstring)."""
    if old.shape == fresh.shape:
        return old
    n = old.shape[0] if old.dim() else 0
    if old.dim() == 0 or old.shape[1:] != fresh.shape[1:] or fresh.shape[0] < n:
        raise ElmanError(
            f"--init-from {path}: weight {name} is {tuple(old.shape)} there and "
            f"{tuple(fresh.shape)} in the recipe's model; the checkpoint does not fit its recipe"
        )
    out = fresh.clone()
    out[:n] = old
    if trained:  # (V_new − V_old, …) rows: the mean of the old rows
        out[n:] = old.double().mean(dim=0).to(out.dtype)
    return out
