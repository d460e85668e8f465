"""Training throughput of elman's LM trainer vs a plain-PyTorch reference loop, side by side.

Both train the same model (nn.Embedding → LSTM → nn.Linear, cross entropy, SGD, global-norm
clipping) on the same PTB stream for the same number of steps; tests/train/test_reference_loop.py
checks that they take the same steps (1e-5). Each measurement runs in its own child process,
alternating the contenders, and reports training tokens per second over the timed steps (after
warm-up steps) and the process's peak memory (RSS on the CPU, allocated memory on CUDA).
``--compile`` adds elman with ``train.compile = true`` (torch.compile of the training step; its
compile time is in the warm-up), ``--bf16`` elman with ``train.autocast = "bfloat16"`` (not the
same math: its MFU counts the same FLOPs against the float32 peak).

Model FLOP utilisation (MFU) is the model's training FLOPs per second (forward + backward, 3×
the forward's multiply-adds ×2: 6·H·V per token for the output layer, 6·4H·(in + H) per token and
LSTM layer) over the machine's SGEMM peak, measured in the same run, in a child process with the
same thread count: the best of a 2048³ product and the output layer's own three products.

    python benchmarks/lm_throughput.py [--config small|medium|both] [--steps 100] [--rounds 3]
        [--compile] [--bf16] [--device cpu|cuda]

Writes benchmarks/results/lm_throughput.json. The machine is shared and noisy: read the ratio
of medians, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
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


def flops_per_token(cfg: dict, vocab_size: int) -> float:
    """Training FLOPs per token: 3 × the forward's 2·(multiply-adds) (the backward costs 2×)."""
    H = cfg["hidden"]
    lstm = sum(2 * 4 * H * (H + H) for _ in range(cfg["layers"]))  # input size H at every layer
    output = 2 * H * vocab_size
    return 3.0 * (lstm + output)


def sgemm_peak(cfg: dict, vocab_size: int, device: str = "cpu") -> dict:
    """Best float32 matmul rate (FLOP/s) here: a square product and the output layer's three."""
    import torch

    N, H, V = cfg["bptt"] * cfg["batch"], cfg["hidden"], vocab_size
    shapes = {"2048^3": (2048, 2048, 2048), "logits": (N, H, V), "dh": (N, V, H), "dW": (V, N, H)}
    rates = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(5):
            sync(device)
            start = time.perf_counter()
            for _ in range(3):
                a @ b
            sync(device)
            best = min(best, (time.perf_counter() - start) / 3)
        rates[name] = 2.0 * m * k * n / best
    return {"flops_per_s": max(rates.values()), "by_shape": rates}


def ptb_ids():
    from elman.data.datasets import resolve
    from elman.data.vocabulary import Vocabulary

    ds = resolve("ptb")
    vocab = Vocabulary.build(ds.tokens("train"), specials=ds.specials)
    return vocab, vocab.encode(ds.tokens("train"))


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a clock reading covers it."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> float:
    """The process's peak RSS on the CPU; the peak allocated GPU memory on CUDA."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_reference(cfg: dict, steps: int, device: str = "cpu") -> dict:
    """The plain loop of pytorch/examples word_language_model, with the same math."""
    import torch
    from reference_lm import ReferenceLM, reference_step

    torch.manual_seed(1)
    vocab, ids = ptb_ids()
    V, H, T, B = len(vocab), cfg["hidden"], cfg["bptt"], cfg["batch"]
    n = ids.numel() // B
    data = ids[: n * B].view(B, n).t().contiguous().to(device)  # (n, B) batchify
    model = ReferenceLM(V, H, cfg["layers"]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    h = None
    start = None
    for step in range(WARMUP + steps):
        if step == WARMUP:
            sync(device)
            start = time.perf_counter()
        i = (step * T) % (n - T - 1)
        h = reference_step(model, opt, data[i : i + T], data[i + 1 : i + 1 + T], h, cfg["clip"])
    sync(device)
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": steps * T * B / elapsed}


def run_elman(
    cfg: dict,
    steps: int,
    compile: bool = False,
    autocast: str | None = None,
    device: str = "cpu",
) -> dict:
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
                    sync(device)
                    times["start"] = time.perf_counter()
                yield batch

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            epochs=1,
            lr=cfg["lr"],
            schedule="constant",
            clip_norm=cfg["clip"],
            device=device,
            max_steps=WARMUP + steps,
            progress=False,
            log_every=10**9,
            compile=compile,
            autocast=autocast,
        )
        trainer = Trainer(model, tc, Timed(), lambda m: {"loss": 0.0}, tmp, meta={})
        trainer.save = lambda name: None  # time training, not checkpoint writes
        trainer.fit()
        sync(device)
        elapsed = time.perf_counter() - times["start"]
    return {"tokens_per_s": steps * cfg["bptt"] * cfg["batch"] / elapsed}


def child(which: str, config: str, steps: int, threads: int, device: str) -> None:
    import torch

    torch.set_num_threads(threads)
    cfg = CONFIGS[config]
    if which == "sgemm":
        result = sgemm_peak(cfg, len(ptb_ids()[0]), device)
    elif which == "reference":
        result = run_reference(cfg, steps, device)
    else:
        autocast = "bfloat16" if which == "elman-bf16" else None
        compile = which == "elman-compiled"
        result = run_elman(cfg, steps, compile=compile, autocast=autocast, device=device)
    result["peak_rss_mb"] = peak_memory_mb(device)
    print(json.dumps(result))


def spawn(which: str, config: str, steps: int, threads: int, device: str) -> dict:
    """One measurement in a fresh child process; its last stdout line is the JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, config]
        + ["--steps", str(steps), "--threads", str(threads), "--device", device],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--compile", action="store_true", help="also time elman with train.compile")
    ap.add_argument(
        "--bf16", action="store_true", help="also time elman with train.autocast = bfloat16"
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (float32 matmuls, no TF32)")
    ap.add_argument("--child", nargs=2, metavar=("WHICH", "CONFIG"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "lm_throughput.json"))
    args = ap.parse_args()
    from elman.provenance import command_line, provenance

    if args.child:
        child(args.child[0], args.child[1], args.steps, args.threads, args.device)
        return

    if args.device != "cpu":
        import torch  # noqa: F401  (loaded here too, so that the provenance names the GPU)

    configs = ["small", "medium"] if args.config == "both" else [args.config]
    contenders = ["elman", "reference"] + (["elman-compiled"] if args.compile else [])
    contenders += ["elman-bf16"] if args.bf16 else []
    report = {
        **provenance(args.device, command_line(prog="python benchmarks/lm_throughput.py")),
        "cpus": os.cpu_count(),
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads,
        "load_average_before": os.getloadavg(),
        "results": {},
    }
    vocab_size = len(ptb_ids()[0])
    for config in configs:
        cfg = CONFIGS[config]
        runs: dict[str, list[dict]] = {w: [] for w in contenders}
        peaks = []
        for _ in range(args.rounds):
            peaks.append(spawn("sgemm", config, 0, args.threads, args.device))
            for which in contenders:
                runs[which].append(spawn(which, config, args.steps, args.threads, args.device))
        peak = max(p["flops_per_s"] for p in peaks)
        flops = flops_per_token(cfg, vocab_size)
        med = {w: statistics.median(r["tokens_per_s"] for r in rs) for w, rs in runs.items()}
        rss = {w: max(r["peak_rss_mb"] for r in rs) for w, rs in runs.items()}
        result = {
            "model_flops_per_token": flops,
            "sgemm_peak_gflops": peak / 1e9,
            "sgemm_runs": peaks,
            "tokens_per_s": med,
            "mfu": {w: med[w] * flops / peak for w in contenders},
            "ratio_to_reference": {w: med[w] / med["reference"] for w in contenders},
            "peak_rss_mb": rss,
            "runs": runs,
        }
        report["results"][config] = result
        line = " | ".join(
            f"{w} {med[w]:7.0f} tok/s ×{result['ratio_to_reference'][w]:.3f} "
            f"MFU {result['mfu'][w]:.0%} {rss[w]:.0f} MB"
            for w in contenders
        )
        print(f"{config:6s} SGEMM peak {peak / 1e9:.0f} GFLOP/s | {line}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
