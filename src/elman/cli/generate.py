"""``elman generate CHECKPOINT --prompt "…" --tokens N``: continue a prompt by sampling.

The Python function is ``elman.load(CHECKPOINT).generate(prompt, tokens, …)``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a language model", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument("--prompt", default="", help="text to continue (default: a new sentence)")
    p.add_argument("--tokens", type=int, default=50, help="how many tokens to sample")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from elman.tasks.loading import load

    model = load(args.checkpoint, args.device, need="generate", command="`elman generate`")
    text = model.generate(
        args.prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    print(text)
    return 0
