"""The feed-forward language-modelling task: a corpus, context windows and Bengio's NPLM.

Same corpora, vocabulary and perplexity convention as the RNN LMs (:mod:`elman.train.lm`, whose
helpers this task reuses): every token of the split is predicted once, ``<eos>`` included, the
context before the first token padded with ``<eos>`` (the stream starts as if after a sentence
end). Training draws the windows in a fresh random order every epoch; evaluation walks them in
order. The model carries no state between batches.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elman.data.datasets import Dataset, resolve
from elman.data.vocabulary import Vocabulary
from elman.data.windows import ContextWindows
from elman.errors import ElmanError
from elman.models.nplm import NPLM, NPLMConfig, build_nplm
from elman.train.lm import checked_vocab, encode_split, metrics_from_loss
from elman.train.trainer import TrainConfig, evaluate_loss, pick_device


@dataclass
class NPLMDataConfig:
    dataset: str = "ptb"  # a name (`elman data list`) or a folder with train/valid/test.txt
    batch_size: int = 256  # windows per training step
    eval_batch_size: int = 1024  # windows per evaluation step (any size gives the same score)
    epoch_size: int | None = None  # training windows per epoch, a fresh random subset; None: all
    min_count: int = 1
    max_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise ValueError(f"epoch_size must be at least 1, got {self.epoch_size}")

    @property
    def bptt(self) -> int:
        """Unused (every window stands alone); the shared ``evaluate`` signature passes it."""
        return 0


SECTIONS = {"data": NPLMDataConfig, "model": NPLMConfig, "train": TrainConfig}


def build_model(model_cfg: NPLMConfig, vocab: Vocabulary) -> NPLM:
    model_cfg.vocab_size = len(vocab)
    try:
        return build_nplm(model_cfg)
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


def evaluate(
    model: NPLM,
    vocab: Vocabulary,
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device,
    bptt: int = 0,
) -> dict[str, float]:
    """Perplexity (and bpc) of ``model`` on one split, every token scored once (``bptt`` unused)."""
    start = time.perf_counter()
    windows = make_windows(vocab, dataset, split, model.context_size, batch_size)
    result = evaluate_loss(model, windows, device)
    metrics = metrics_from_loss(result["loss"], result["tokens"], dataset.level)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def prepare(recipe: Any, vocab: Vocabulary | None = None) -> dict[str, Any]:
    """Everything the trainer needs: model, shuffled training windows, validation, metadata."""
    data_cfg: NPLMDataConfig = recipe.data
    dataset = resolve(data_cfg.dataset)
    vocab = checked_vocab(dataset, data_cfg, vocab)
    model = build_model(recipe.model, vocab)
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
    valid_device = pick_device(recipe.train.device)

    def validate(m: NPLM) -> dict[str, float]:
        return evaluate(m, vocab, dataset, "valid", data_cfg.eval_batch_size, valid_device)

    return {
        "model": model,
        "train_data": train_windows,
        "evaluate": validate,
        "meta": {
            "task": "nplm",
            "recipe": recipe.raw,
            "vocab": vocab.to_dict(),
            "level": dataset.level,
        },
        "dataset": dataset,
        "vocab": vocab,
    }


def load(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Rebuild the model, vocabulary and recipe stored in a checkpoint."""
    from elman.train.recipe import parse_recipe

    recipe = parse_recipe(payload["recipe"])
    vocab = Vocabulary.from_dict(payload["vocab"])
    model = build_model(recipe.model, vocab)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ElmanError(
            f"checkpoint {payload.get('path', '?')}: weights do not match its recipe's "
            f"architecture ({str(err).splitlines()[0][:160]})"
        ) from None
    model.to(device).eval()
    return {"model": model, "vocab": vocab, "recipe": recipe, "level": payload.get("level", "word")}


# --- mixing with an n-gram model ---------------------------------------------------------
@torch.no_grad()
def token_logprobs(model: NPLM, windows: ContextWindows, device: torch.device) -> torch.Tensor:
    """log ŷ_{t, w_t} of every scored token, in stream order, shape (N,), float64."""
    model.eval()
    out = []
    for batch in windows.to(device).iter_from(0):
        logits = model(batch.contexts)  # (B, V)
        out.append(-torch.nn.functional.cross_entropy(logits, batch.targets, reduction="none"))
    return torch.cat(out).double().cpu()


def interpolate(logp_a: torch.Tensor, logp_b: torch.Tensor, weight: float) -> torch.Tensor:
    """log(λ p_a + (1 − λ) p_b) per token, computed in the log domain (λ = ``weight``)."""
    if weight <= 0.0:
        return logp_b
    if weight >= 1.0:
        return logp_a
    return torch.logaddexp(logp_a + math.log(weight), logp_b + math.log1p(-weight))


def mix_with_ngram(
    checkpoint: str | Path,
    arpa: str | Path,
    *,
    data: str | None = None,
    device: str = "auto",
    grid: int = 100,
) -> dict[str, Any]:
    """Linear interpolation λ p_NPLM + (1 − λ) p_ngram, λ chosen on valid, scored on test.

    Both models score the same tokens (a line's words, then ``<eos>`` = ``</s>``), so the
    mixture is a token-by-token sum; λ is the grid point k / ``grid`` with the lowest validation
    perplexity (Mikolov 2012 tunes the weight on validation data the same way).
    """
    from elman.models.ngram import read_arpa
    from elman.train.checkpoint import load_checkpoint

    dev = pick_device(device)
    payload = load_checkpoint(checkpoint, map_location=dev)
    if payload.get("task") != "nplm":
        raise ElmanError(f"{payload['path']} is a {payload.get('task')!r} checkpoint, not an NPLM")
    loaded = load(payload, dev)
    model, vocab, recipe = loaded["model"], loaded["vocab"], loaded["recipe"]
    dataset = resolve(data or recipe.data.dataset)
    ngram = read_arpa(arpa)
    logp: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split in ("valid", "test"):
        windows = make_windows(vocab, dataset, split, model.context_size, 1024)
        nn_lp = token_logprobs(model, windows, dev)
        ng_lp = torch.from_numpy(ngram.logprobs(dataset.lines(split))).double()
        if nn_lp.shape != ng_lp.shape:
            raise ElmanError(
                f"{dataset.name}/{split}: the NPLM scores {nn_lp.numel()} tokens, the n-gram model "
                f"{ng_lp.numel()}; mix models of the same corpus"
            )
        logp[split] = (nn_lp, ng_lp)

    def ppl(lp: torch.Tensor) -> float:
        return math.exp(-lp.mean().item())

    weights = [k / grid for k in range(grid + 1)]
    valid_ppl = [ppl(interpolate(*logp["valid"], w)) for w in weights]
    best = weights[min(range(len(weights)), key=valid_ppl.__getitem__)]
    result: dict[str, Any] = {"weight": best}
    for split, (nn_lp, ng_lp) in logp.items():
        result[split] = {
            "ppl": ppl(interpolate(nn_lp, ng_lp, best)),
            "nplm_ppl": ppl(nn_lp),
            "ngram_ppl": ppl(ng_lp),
            "tokens": nn_lp.numel(),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m elman.train.nplm mix CHECKPOINT ARPA [--results JSON]``."""
    import argparse
    import datetime as _dt
    import json
    import shlex
    import sys

    from elman.train.run import device_description, git_commit

    parser = argparse.ArgumentParser(prog="python -m elman.train.nplm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mix", help="interpolate an NPLM with an n-gram model (ARPA)")
    p.add_argument("checkpoint", help="an NPLM checkpoint or run folder")
    p.add_argument("arpa", help="an ARPA file of the same corpus (elman ngram build)")
    p.add_argument("--data", help="dataset (default: the NPLM's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--name", default="nplm+ngram", help="the results' recipe name")
    p.add_argument("--aim", default="", help="the published number it aims at")
    p.add_argument("--results", help="write a results JSON file here")
    args = parser.parse_args(argv)
    try:
        start = time.perf_counter()
        mixed = mix_with_ngram(args.checkpoint, args.arpa, data=args.data, device=args.device)
    except ElmanError as err:
        print(f"elman: error: {err}", file=sys.stderr)
        return 2
    for split in ("valid", "test"):
        m = mixed[split]
        print(
            f"{split:5s} | mix ppl {m['ppl']:8.2f} | nplm {m['nplm_ppl']:8.2f} "
            f"| ngram {m['ngram_ppl']:8.2f} | weight {mixed['weight']:.2f}"
        )
    if args.results:
        argv_text = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        record = {
            "recipe": args.name,
            "aim": args.aim,
            "task": "nplm+ngram",
            "metrics": {"valid": mixed["valid"], "test": mixed["test"]},
            "weight": mixed["weight"],
            "wall_time_s": round(time.perf_counter() - start, 1),
            "device": device_description(pick_device(args.device)),
            "torch": torch.__version__,
            "commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": f"python -m elman.train.nplm {argv_text}",
        }
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
