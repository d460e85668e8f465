"""``elman generate CHECKPOINT --prompt "…" --tokens N``: continue a prompt by sampling."""

from __future__ import annotations

import argparse
import warnings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a language model", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument("--prompt", default="", help="text to continue (default: a new sentence)")
    p.add_argument("--tokens", type=int, default=50, help="how many tokens to sample")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def generate(
    checkpoint: str,
    prompt: str = "",
    tokens: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> str:
    """The prompt followed by ``tokens`` sampled tokens, as text."""
    from elman.errors import ElmanError
    from elman.inference.generate import sample
    from elman.train import lm
    from elman.train.checkpoint import load_task_checkpoint
    from elman.train.trainer import pick_device

    if tokens < 0:
        raise ElmanError(f"--tokens must be >= 0, got {tokens}")
    if temperature < 0:
        raise ElmanError(f"--temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ElmanError(f"--top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ElmanError(f"--top-p must be in (0, 1], got {top_p}")
    dev = pick_device(device)
    payload = load_task_checkpoint(checkpoint, "lm", "`elman generate`", map_location=dev)
    loaded = lm.load(payload, dev)
    vocab, level = loaded["vocab"], loaded["level"]
    ids, unknown = lm.encode_prompt(prompt, vocab, level)
    if unknown:
        warnings.warn(
            f"prompt words not in the vocabulary, read as <unk>: {' '.join(unknown)}", stacklevel=2
        )
    new = sample(
        loaded["model"],
        ids,
        tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        device=dev,
    )
    sep = " " if level == "word" and prompt else ""
    return prompt + sep + lm.decode_text(new, vocab, level)


def run(args: argparse.Namespace) -> int:
    text = generate(
        args.checkpoint,
        args.prompt,
        args.tokens,
        args.temperature,
        args.top_k,
        args.top_p,
        args.seed,
        args.device,
    )
    print(text)
    return 0
