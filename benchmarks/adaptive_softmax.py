"""Full softmax vs adaptive softmax (Grave et al. 2017) and class softmax (Mikolov et al. 2011).

All models are elman's RNNLM with the same LSTM body, trained by the same loop (``model.loss``,
Adam, global-norm clipping) on the same WikiText-2 stream (33,278 words) from the same seed; only
``model.output`` differs. Reported:

- training tokens per second over the timed steps (after warm-up), runs alternating the
  ``--speed`` outputs for ``--rounds`` rounds, each in a fresh model; the ratios of medians to
  the full softmax are the numbers;
- validation perplexity of each ``--outputs`` model after the same ``--train-steps`` steps
  (exact, normalised probabilities for all: a factored model's ``forward`` gives log ŷ over all
  words).

    python benchmarks/adaptive_softmax.py [--steps 40] [--rounds 3] [--train-steps 400]
    python benchmarks/adaptive_softmax.py --rounds 0 --train-steps 2983 --outputs softmax \
        --out benchmarks/results/adaptive_softmax_epoch_softmax.json   # one epoch; and adaptive

Writes benchmarks/results/adaptive_softmax.json. The machine is shared and noisy: read ratios.
The issue's quality goal is stated after the same number of *epochs*; ``--train-steps`` set to a
multiple of the epoch (2,983 steps at batch 20, bptt 35) measures exactly that, at a cost; run
each model in its own process (``--rounds 0 --outputs NAME --out …``) to use both cores.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

BODY = {"cell": "lstm", "embedding_dim": 256, "hidden_size": 256, "num_layers": 1}
BATCH, BPTT, LR, CLIP = 20, 35, 2e-3, 0.25


def data():
    """Vocabulary size, training-token counts, the training and the validation stream."""
    from elman.data.batching import BPTTStream
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary

    ds = resolve("wikitext-2")
    vocab = Vocabulary.build(ds.tokens("train"), specials=ds.specials)
    train = vocab.encode(ds.tokens("train"))
    valid = vocab.encode(ds.tokens("valid"))
    start = vocab.eos_index
    return (
        len(vocab),
        torch.bincount(train, minlength=len(vocab)),
        BPTTStream(train, batch_size=BATCH, bptt=BPTT, start_id=start),
        BPTTStream(valid, batch_size=10, bptt=BPTT, start_id=start),
    )


def build(vocab_size: int, counts: torch.Tensor, output: str, settings: dict):
    """The RNNLM with ``output`` and that output's ``settings`` (e.g. adaptive_cutoffs)."""
    from elman.models.rnnlm import RNNLM, RNNLMConfig

    torch.manual_seed(1)
    extra = {"output": output, **settings.get(output, {})}
    return RNNLM(RNNLMConfig(vocab_size=vocab_size, **BODY, **extra), counts)


def train_steps(model, stream, steps: int, warmup: int = 0) -> float:
    """Train ``steps`` steps; tokens/s over the steps after ``warmup``."""
    from elman.train.optim import clip_grad_norm

    opt = torch.optim.Adam(model.parameters(), lr=LR)
    params = [p for p in model.parameters() if p.requires_grad]
    state, tokens, start = None, 0, time.perf_counter()
    for i, batch in enumerate(stream.iter_from(0)):
        if i == steps:
            break
        if i == warmup:
            tokens, start = 0, time.perf_counter()
        loss_sum, n, state = model.loss(batch, state)
        opt.zero_grad(set_to_none=True)
        (loss_sum / n).backward()
        clip_grad_norm(params, CLIP)
        opt.step()
        state = tuple(s.detach() for s in state)
        tokens += n
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per round (+5 warm-up)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=400, help="steps before validation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--outputs", default="softmax,adaptive", help="models whose quality to measure")
    ap.add_argument("--speed", default="softmax,adaptive", help="models whose speed to measure")
    ap.add_argument("--cutoffs", default="2000,10000", help="adaptive_cutoffs, comma-separated")
    ap.add_argument("--div-value", type=float, default=4.0, help="adaptive_div_value")
    ap.add_argument("--classes", type=int, default=0, help="output_classes (0: ⌈√V⌉)")
    ap.add_argument("--out", default="benchmarks/results/adaptive_softmax.json")
    args = ap.parse_args()
    from elman.provenance import command_line, provenance

    settings = {
        "adaptive": {
            "adaptive_cutoffs": [int(c) for c in args.cutoffs.split(",")],
            "adaptive_div_value": args.div_value,
        },
        "class": {"output_classes": args.classes},
    }
    torch.set_num_threads(args.threads)
    from elman.train.trainer import evaluate_loss

    vocab_size, counts, train, valid = data()
    speed: dict[str, list[float]] = {k: [] for k in args.speed.split(",") if k}
    for r in range(args.rounds):
        for output in speed:
            model = build(vocab_size, counts, output, settings)
            tps = train_steps(model, train, args.steps + 5, warmup=5)
            speed[output].append(tps)
            print(f"round {r + 1} {output:8s} {tps:8.0f} tokens/s", flush=True)
    quality = {}
    for output in filter(None, args.outputs.split(",")):
        model = build(vocab_size, counts, output, settings)
        train_steps(model, train, args.train_steps)
        loss = evaluate_loss(model, valid, torch.device("cpu"))["loss"]
        quality[output] = math.exp(loss)
        print(f"{output:8s} valid ppl after {args.train_steps} steps: {quality[output]:.1f}")
    med = {k: statistics.median(v) for k, v in speed.items() if v}
    record = {
        "benchmark": "adaptive_softmax",
        "model": BODY,
        "settings": {k: v for k, v in settings.items() if k in speed or k in quality},
        "batch": BATCH,
        "bptt": BPTT,
        "vocab_size": vocab_size,
        "tokens_per_s": speed,
        "median_tokens_per_s": med,
        "speedup": {k: v / med["softmax"] for k, v in med.items()} if "softmax" in med else {},
        "train_steps": args.train_steps,
        "valid_ppl": quality,
        "ppl_ratio": (
            {k: v / quality["softmax"] for k, v in quality.items()} if "softmax" in quality else {}
        ),
        "threads": args.threads,
        **provenance("cpu", command_line(prog="python benchmarks/adaptive_softmax.py")),
    }
    for k, v in record["speedup"].items():
        print(f"speed-up {k}/softmax {v:.2f}x", flush=True)
    for k, v in record["ppl_ratio"].items():
        print(f"valid ppl {k}/softmax {v:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
