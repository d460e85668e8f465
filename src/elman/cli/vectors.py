"""``elman vectors --data NAME --out FILE.vec``: word2vec vectors of a corpus's training split.

    elman vectors --data wikitext-2 --out runs/wikitext-2.vec --dim 100 --window 2

Skip-gram with negative sampling (gensim's word2vec; ``pip install 'elman[vectors]'``), written
in the word2vec text format that a tagger recipe reads with ``data.vectors = "FILE.vec"``.
``--data`` is a word-level dataset name (``elman data list``), a folder with train.txt, or a
plain text file (one sentence a line). Also a function: :func:`vectors`.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from elman.cli.options import SEED, THREADS, check_output, integer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vectors", help="train word2vec vectors on a corpus", description=__doc__)
    p.add_argument("--data", required=True, help="dataset name, folder or text file")
    p.add_argument("--out", required=True, help="output file (word2vec text format)")
    p.add_argument("--dim", type=integer(1, 10_000), default=100, help="vector size")
    p.add_argument("--window", type=integer(1, 100), default=2, help="context words on each side")
    p.add_argument("--min-count", type=integer(1), default=2, help="drop rarer words")
    p.add_argument("--epochs", type=integer(1, 1000), default=5, help="passes over the corpus")
    p.add_argument("--seed", type=SEED, default=1, help="random seed")
    p.add_argument(
        "--threads", type=THREADS, default=1, help="word2vec worker threads (1: reproducible)"
    )
    p.set_defaults(func=run)


def vectors(
    data: str,
    out: str | Path,
    *,
    dim: int = 100,
    window: int = 2,
    min_count: int = 2,
    epochs: int = 5,
    seed: int = 1,
    threads: int = 1,
) -> int:
    """Train vectors on the training split of ``data``, write them to ``out``; their count."""
    from elman.cli.ngram import load_lines
    from elman.data.vectors import train_vectors, write_vectors
    from elman.errors import ElmanError

    for name, value in (("--dim", dim), ("--window", window), ("--epochs", epochs)):
        if value < 1:
            raise ElmanError(f"{name} must be at least 1, got {value}")
    check_output(out, "--out")  # before the training, not after it
    sentences = [line.split() for line in load_lines(data, "train")]
    top = max(Counter(w for s in sentences for w in s).values(), default=0)
    if top < min_count:  # gensim would stop with "you must first build vocabulary"
        raise ElmanError(
            f"--min-count {min_count}: no word of {data} occurs that often (the most frequent "
            f"occurs {top} times); give a smaller --min-count or more text"
        )
    words, matrix = train_vectors(
        sentences,
        dim=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        seed=seed,
        threads=threads,
    )
    write_vectors(out, words, matrix)  # atomic: an older file stays whole until this one is done
    return len(words)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    n = vectors(
        args.data,
        args.out,
        dim=args.dim,
        window=args.window,
        min_count=args.min_count,
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
    )
    seconds = time.perf_counter() - start
    print(f"{n} vectors of dimension {args.dim} -> {args.out} ({seconds:.1f} s)")
    return 0
