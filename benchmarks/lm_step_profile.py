"""Where one training step of the plain LSTM LM spends its time (torch.profiler, CPU).

The step of ``benchmarks/lm_throughput.py``'s reference loop (nn.Embedding → nn.LSTM →
nn.Linear, cross entropy, clipping, SGD) on random word ids, profiled over ``--steps`` steps
after warm-up, with each operator's self time grouped into: the output layer's matrix
products, the LSTM, log-softmax (forward and backward) and everything else. It bounds what
removing overhead can gain: at best 1 / (share of the unavoidable matrix products).

    python benchmarks/lm_step_profile.py [--config small|medium] [--steps 10] [--threads 1]

Writes benchmarks/results/lm_step_profile_<config>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

CONFIGS = {"small": (200, 20), "medium": (650, 35)}  # hidden size, BPTT; 2 layers, batch 20
V, B, LAYERS = 10000, 20, 2
GROUPS = {  # operator name → group
    "aten::mm": "output layer matmuls",
    "aten::addmm": "output layer matmuls",
    "aten::mkldnn_rnn_layer": "LSTM",
    "aten::mkldnn_rnn_layer_backward": "LSTM",
    "aten::_log_softmax": "log-softmax",
    "aten::_log_softmax_backward_data": "log-softmax",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from elman.provenance import command_line, provenance

    H, T = CONFIGS[args.config]
    torch.manual_seed(0)
    emb, rnn, out = nn.Embedding(V, H), nn.LSTM(H, H, LAYERS), nn.Linear(H, V)
    params = [*emb.parameters(), *rnn.parameters(), *out.parameters()]
    opt = torch.optim.SGD(params, lr=1.0)
    x, y = torch.randint(V, (T, B)), torch.randint(V, (T, B))

    def step() -> None:
        logits = out(rnn(emb(x))[0])
        loss = nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        group = GROUPS.get(event.key, "everything else")
        shares[group] = shares.get(group, 0.0) + event.self_cpu_time_total
    total = sum(shares.values())
    shares = {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    for k, v in shares.items():
        print(f"{k:22s} {v:6.1%}")
    bound = 1.0 / (shares.get("output layer matmuls", 0.0) + shares.get("LSTM", 0.0))
    print(f"removing all else would give at most {bound:.2f}x")
    record = {
        "benchmark": "lm_step_profile",
        "config": {"hidden": H, "layers": LAYERS, "bptt": T, "batch": B, "vocab": V},
        "self_time_share": shares,
        "step_ms": total / args.steps / 1e3,
        "bound_without_overhead": bound,
        "threads": args.threads,
        **provenance("cpu", command_line(prog="python benchmarks/lm_step_profile.py")),
    }
    path = Path(__file__).parent / "results" / f"lm_step_profile_{args.config}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
