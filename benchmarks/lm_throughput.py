"""Training throughput of elman's LM trainer vs a plain-PyTorch reference loop, side by side.

Both train the same model (nn.Embedding → LSTM → nn.Linear, cross entropy, SGD, global-norm
clipping) on the same PTB stream for the same number of steps. Each measurement runs in its own
child process (so peak memory is per run), alternating elman / reference, and reports training
tokens per second over the timed steps (after warm-up steps) and the process's peak RSS.

    python benchmarks/lm_throughput.py [--config small|medium|both] [--steps 100] [--rounds 3]

Writes benchmarks/results/lm_throughput.json. The machine is shared and noisy: read the ratio
of medians, not absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {  # Zaremba et al. 2014
    "small": {"hidden": 200, "layers": 2, "bptt": 20, "batch": 20, "lr": 20.0, "clip": 0.25},
    "medium": {"hidden": 650, "layers": 2, "bptt": 35, "batch": 20, "lr": 35.0, "clip": 0.14},
}
WARMUP = 10


def ptb_ids():
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary

    ds = resolve("ptb")
    vocab = Vocabulary.build(ds.tokens("train"), specials=ds.specials)
    return vocab, vocab.encode(ds.tokens("train"))


def run_reference(cfg: dict, steps: int) -> dict:
    """The plain loop of pytorch/examples word_language_model, with the same math."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    vocab, ids = ptb_ids()
    V, H, T, B = len(vocab), cfg["hidden"], cfg["bptt"], cfg["batch"]
    n = ids.numel() // B
    data = ids[: n * B].view(B, n).t().contiguous()  # (n, B) batchify

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, cfg["layers"])
            self.out = nn.Linear(H, V)

        def forward(self, x, h):
            y, h = self.rnn(self.emb(x), h)
            return self.out(y), h

    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    crit = nn.CrossEntropyLoss()
    h = None
    start = None
    for step in range(WARMUP + steps):
        if step == WARMUP:
            start = time.perf_counter()
        i = (step * T) % (n - T - 1)
        x, y = data[i : i + T], data[i + 1 : i + 1 + T]
        if h is not None:
            h = tuple(t.detach() for t in h)
        logits, h = model(x, h)
        loss = crit(logits.view(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        loss.item()  # the reference logs its loss every step
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": steps * T * B / elapsed}


def run_elman(cfg: dict, steps: int) -> dict:
    import tempfile

    import torch

    from elman.data.batching import BPTTStream
    from elman.models.rnnlm import RNNLM, RNNLMConfig
    from elman.train.trainer import TrainConfig, Trainer

    torch.manual_seed(1)
    vocab, ids = ptb_ids()
    stream = BPTTStream(ids, cfg["batch"], cfg["bptt"], start_id=vocab.eos_index)
    model = RNNLM(
        RNNLMConfig(
            vocab_size=len(vocab),
            cell="lstm",
            embedding_dim=cfg["hidden"],
            hidden_size=cfg["hidden"],
            num_layers=cfg["layers"],
        )
    )
    times = {}

    class Timed:
        """The stream, with a clock started after the warm-up batches."""

        def __len__(self):
            return len(stream)

        def iter_from(self, i):
            for k, batch in enumerate(stream.iter_from(i)):
                if k == WARMUP:
                    times["start"] = time.perf_counter()
                yield batch

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            epochs=1,
            lr=cfg["lr"],
            schedule="constant",
            clip_norm=cfg["clip"],
            device="cpu",
            max_steps=WARMUP + steps,
            progress=False,
            log_every=10**9,
        )
        trainer = Trainer(model, tc, Timed(), lambda m: {"loss": 0.0}, tmp, meta={})
        trainer.save = lambda name: None  # time training, not checkpoint writes
        trainer.fit()
        elapsed = time.perf_counter() - times["start"]
    return {"tokens_per_s": steps * cfg["bptt"] * cfg["batch"] / elapsed}


def child(which: str, config: str, steps: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    result = (run_elman if which == "elman" else run_reference)(CONFIGS[config], steps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", choices=["small", "medium", "both"])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each run (1 is steadiest on a shared machine)",
    )
    ap.add_argument("--child", nargs=2, metavar=("WHICH", "CONFIG"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "lm_throughput.json"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.steps, args.threads)
        return
    configs = ["small", "medium"] if args.config == "both" else [args.config]
    report = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads,
        "load_average_before": os.getloadavg(),
        "results": {},
    }
    for config in configs:
        runs = {"elman": [], "reference": []}
        for _ in range(args.rounds):
            for which in ("elman", "reference"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        which,
                        config,
                        "--steps",
                        str(args.steps),
                        "--threads",
                        str(args.threads),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {w: statistics.median(r["tokens_per_s"] for r in rs) for w, rs in runs.items()}
        rss = {w: max(r["peak_rss_mb"] for r in rs) for w, rs in runs.items()}
        ratio = med["elman"] / med["reference"]
        report["results"][config] = {
            "elman_tokens_per_s": med["elman"],
            "reference_tokens_per_s": med["reference"],
            "ratio": ratio,
            "elman_peak_rss_mb": rss["elman"],
            "reference_peak_rss_mb": rss["reference"],
            "runs": runs,
        }
        print(
            f"{config:6s} elman {med['elman']:8.0f} tok/s | reference {med['reference']:8.0f} "
            f"tok/s | ratio {ratio:.3f} | peak RSS {rss['elman']:.0f} / {rss['reference']:.0f} MB"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
