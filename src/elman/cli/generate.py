"""``elman generate CHECKPOINT --prompt "…" --tokens N``: continue a prompt by sampling.

Temperature 0 is greedy decoding; --top-k and --top-p restrict each step to the k most probable
tokens or to the smallest set whose probability reaches p. The Python function is
``elman.load(CHECKPOINT).generate(prompt, tokens, …)``.
"""

from __future__ import annotations

import argparse

from elman.cli.options import (
    SEED,
    add_device,
    add_threads,
    check_device,
    integer,
    real,
    use_threads,
)

# Far beyond any use (a 1,000,000-token sample is a few novels) and still a run that ends.
MAX_TOKENS = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a language model", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument("--prompt", default="", help="text to continue (default: a new sentence)")
    p.add_argument(
        "--tokens", type=integer(0, MAX_TOKENS), default=50, help="how many tokens to sample"
    )
    p.add_argument(
        "--temperature", type=real(0.0), default=1.0, help="divides the logits; 0 = greedy"
    )
    p.add_argument(
        "--top-k", type=integer(1), default=None, help="keep the k most probable (default: all)"
    )
    p.add_argument(
        "--top-p",
        type=real(0.0, 1.0, above=True),
        default=None,
        help="keep the smallest set with probability >= p, 0 < p <= 1 (default: 1, all)",
    )
    p.add_argument("--seed", type=SEED, default=None, help="random seed (default: a new one)")
    add_device(p)
    add_threads(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from elman.tasks.loading import load

    use_threads(args.threads)
    check_device(args.device)
    model = load(args.checkpoint, args.device, need="generate", command="`elman generate`")
    text = model.generate(
        args.prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    print(text)
    return 0
