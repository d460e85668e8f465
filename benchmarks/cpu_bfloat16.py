"""Whether bfloat16 pays on this CPU: float32 against bfloat16, side by side, on one thread.

    python benchmarks/cpu_bfloat16.py [--rounds 5] [--out benchmarks/results/cpu_bfloat16.json]

Two workloads of `wikitext2-fast`'s training step (a batch of 32 × 35 tokens, 400 units): the
product of the tokens' states with an LSTM's four gate matrices, (1120 × 400)(400 × 1600), and
a 35-step LSTM's forward and backward. Each round times both dtypes, alternating; the record
keeps the median seconds and the ratio bfloat16 / float32 (below 1: bfloat16 is faster). It
also records whether oneDNN has bfloat16 kernels here (``train.autocast = "bfloat16"`` trains
in float32 without them) and whether torch's fused LSTM runs under a bfloat16 autocast at all.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from elman.files import write_json
from elman.provenance import provenance
from elman.train.trainer import cpu_has_bfloat16


def seconds(work: Callable[[], None], repeats: int) -> float:
    work()  # warm-up: oneDNN builds its primitives on the first call
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - start) / repeats


def matmul(dtype: torch.dtype) -> Callable[[], None]:
    a, b = torch.randn(1120, 400, dtype=dtype), torch.randn(400, 1600, dtype=dtype)

    def product() -> None:
        torch.mm(a, b)

    return product


def lstm(dtype: torch.dtype) -> Callable[[], None]:
    layer = torch.nn.LSTM(400, 400).to(dtype)
    x = torch.randn(35, 32, 400, dtype=dtype, requires_grad=True)

    def step() -> None:
        layer(x)[0].float().sum().backward()

    return step


def lstm_under_autocast() -> str:
    layer = torch.nn.LSTM(8, 8)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(torch.randn(3, 2, 8))
    except RuntimeError as err:
        return f"fails: {str(err).splitlines()[0][:100]}"
    return "runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/cpu_bfloat16.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workloads = {"matmul 1120x400x1600": (matmul, 20), "lstm 35x32x400 fwd+bwd": (lstm, 3)}
    rows = []
    for name, (build, repeats) in workloads.items():
        times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
        for _ in range(args.rounds):
            for dtype in (torch.float32, torch.bfloat16):
                times[str(dtype).removeprefix("torch.")].append(seconds(build(dtype), repeats))
        f32, bf16 = statistics.median(times["float32"]), statistics.median(times["bfloat16"])
        rows.append({"workload": name, "float32_s": f32, "bfloat16_s": bf16, "ratio": bf16 / f32})
        print(
            f"{name}: float32 {f32 * 1e3:.1f} ms, bfloat16 {bf16 * 1e3:.1f} ms, {bf16 / f32:.2f}x"
        )
    record = {
        "benchmark": "cpu_bfloat16",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bfloat16_kernels": cpu_has_bfloat16(),
        "fused_lstm_under_bfloat16_autocast": lstm_under_autocast(),
        "rounds": args.rounds,
        "results": rows,
        **provenance(device=torch.device("cpu")),
    }
    print(
        f"bfloat16 kernels: {record['onednn_bfloat16_kernels']}; fused LSTM under autocast: "
        f"{record['fused_lstm_under_bfloat16_autocast']}"
    )
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
