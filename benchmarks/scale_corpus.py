"""Corpora of any size for the n-gram scaling benchmarks, sampled from WikiText-2, with a seed.

    ELMAN_DATA=/path/to/corpora python benchmarks/scale_corpus.py --tokens 10M --out .data/scale-10M

Writes OUT/train.txt (about ``--tokens`` words), OUT/valid.txt and OUT/test.txt (each 1% of
it, at least 10,000 words), one sentence a line, sampled from the maximum-likelihood trigram
chain of WikiText-2's training split: each sentence starts from (<s>, <s>) and each next word
is drawn in proportion to the count of (w_{t−2}, w_{t−1}, w) in WikiText-2, until </s>. Every
trigram of the output occurs in WikiText-2; the 4- and 5-grams are new combinations, so the
number of distinct n-grams grows with the size as in real text, though faster (the chain has
no memory beyond two words). ``stats`` (printed, and in OUT/stats.json) gives the distinct
5-grams per million tokens of the sample and of real WikiText-2 to compare.

Sampling is vectorised over many sentences at once (NumPy), a few seconds per 10M words.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BOS, EOS = "<s>", "</s>"
STREAMS = 65_536


def parse_size(text: str) -> int:
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}
    return int(float(text[:-1]) * scale[text[-1].upper()]) if text[-1].isalpha() else int(text)


class TrigramChain:
    """The maximum-likelihood trigram chain of ``lines`` as sorted keys and cumulative counts."""

    def __init__(self, lines: list[str]) -> None:
        vocab = sorted({w for line in lines for w in line.split()} | {BOS, EOS})
        self.vocab = vocab
        index = {w: i for i, w in enumerate(vocab)}
        self.V = V = len(vocab)
        bos, eos = index[BOS], index[EOS]
        ids = [[bos, bos, *(index[w] for w in line.split()), eos] for line in lines if line.split()]
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in ids])
        ends = np.cumsum([len(s) for s in ids])
        starts = np.r_[0, ends[:-1]]
        # trigram (a, b, c) at every position t >= start + 2 of its sentence
        pos = np.arange(len(flat)) - np.repeat(starts, [len(s) for s in ids])
        t = np.flatnonzero(pos >= 2)
        keys = (flat[t - 2] * V + flat[t - 1]) * V + flat[t]
        self.keys, counts = np.unique(keys, return_counts=True)
        self.cum = np.cumsum(counts)  # cumulative counts in key order
        self.bos, self.eos = bos, eos

    def step(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A next word for each state (a, b), drawn by the trigram counts."""
        prefix = (a * self.V + b) * self.V
        lo = np.searchsorted(self.keys, prefix)
        hi = np.searchsorted(self.keys, prefix + self.V)
        base = np.where(lo > 0, self.cum[lo - 1], 0)
        total = self.cum[hi - 1] - base
        pick = base + (rng.random(len(a)) * total).astype(np.int64)
        row = np.searchsorted(self.cum, pick, side="right")
        return self.keys[row] % self.V

    def sample(self, words: int, rng: np.random.Generator) -> list[str]:
        """Whole sentences, at least ``words`` words in all (</s> excluded)."""
        streams = max(1, min(STREAMS, words // 1000))
        a = np.full(streams, self.bos)
        b = np.full(streams, self.bos)
        length = np.zeros(streams, dtype=np.int64)  # words of each stream's open sentence
        columns = []
        finished = 0  # words in finished sentences
        while finished < words:
            c = self.step(a, b, rng)
            columns.append(c.astype(np.int32))
            ended = c == self.eos
            finished += int(length[ended].sum())
            length = np.where(ended, 0, length + 1)
            a = np.where(ended, self.bos, b)
            b = np.where(ended, self.bos, c)
        tokens = np.stack(columns, axis=1)  # (streams, steps)
        out: list[str] = []
        vocab = np.asarray(self.vocab, dtype=object)
        for row in tokens:  # whole sentences only: drop each stream's unfinished tail
            start = 0
            for end in np.flatnonzero(row == self.eos):
                out.append(" ".join(vocab[row[start:end]]))
                start = end + 1
        return out


def distinct_5grams_per_million(lines: list[str]) -> float:
    """Distinct 5-grams (with <s> and </s>, as a 5-gram model lists them) per million words."""
    seen: set[int] = set()
    words = 0
    for line in lines:
        w = [BOS, *line.split(), EOS]
        words += len(w) - 2
        seen.update(hash(tuple(w[i : i + 5])) for i in range(len(w) - 4))
    return len(seen) / words * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=parse_size, required=True, help="e.g. 1M, 10M, 100M")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="folder to write")
    args = parser.parse_args()
    from elman.data.datasets import resolve

    start = time.perf_counter()
    real = resolve("wikitext-2").lines("train")
    chain = TrigramChain(real)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held = max(10_000, args.tokens // 100)
    stats: dict = {"seed": args.seed, "tokens_asked": args.tokens}
    for split, size in (("train", args.tokens), ("valid", held), ("test", held)):
        lines = chain.sample(size, rng)
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
        stats[f"{split}_words"] = sum(len(line.split()) for line in lines)
        if split == "train" and args.tokens <= 10**7:  # a set of 5-grams of 100M words: GBs
            stats["distinct_5grams_per_million"] = distinct_5grams_per_million(lines)
    stats["wikitext2_distinct_5grams_per_million"] = distinct_5grams_per_million(real)
    stats["seconds"] = time.perf_counter() - start
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
