"""``elman eval CHECKPOINT --data NAME --split valid|test [--json]``: perplexity (or bpc)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a split", description=__doc__)
    p.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses its best.pt)")
    p.add_argument("--data", help="dataset name or folder (default: the one it was trained on)")
    p.add_argument("--split", default="test", help="train, valid or test (default test)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="evaluation columns (default: recipe)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def evaluate_checkpoint(
    checkpoint: str,
    data: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
) -> dict:
    """Load a checkpoint and score one split; the returned dict holds ppl/bpc, tokens, seconds."""
    from elman.data.datasets import resolve
    from elman.errors import ElmanError
    from elman.train.checkpoint import load_checkpoint
    from elman.train.recipe import task_table
    from elman.train.trainer import pick_device

    if batch_size is not None and batch_size < 1:
        raise ElmanError(f"--batch-size must be >= 1, got {batch_size}")
    dev = pick_device(device)
    payload = load_checkpoint(checkpoint, map_location=dev)
    task = task_table()[payload["task"]]
    loaded = task.load(payload, dev)
    recipe = loaded["recipe"]
    dataset = resolve(data or recipe.data.dataset)
    bs = batch_size or recipe.data.eval_batch_size
    metrics = task.evaluate(
        loaded["model"], loaded["vocab"], dataset, split, bs, dev, recipe.data.bptt
    )
    return {"checkpoint": payload["path"], "data": dataset.name, "split": split, **metrics}


def run(args: argparse.Namespace) -> int:
    result = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.batch_size, args.device
    )
    if args.json:
        print(json.dumps(result))
    else:
        line = f"{result['data']}/{result['split']}: ppl {result['ppl']:.2f}"
        if "bpc" in result:
            line += f", bpc {result['bpc']:.4f}"
        print(line + f", {result['tokens']} tokens, {result['seconds']:.1f} s")
    return 0
