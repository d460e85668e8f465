"""Regenerate this folder's KenLM fixture (needs .kenlm/bin from benchmarks/kenlm.sh):

    python tests/data/kenlm/make.py

corpus.txt and test.txt are synthetic sentences (a random sparse bigram chain over 800 made-up
words, seeded); lmplz.arpa is KenLM's ``lmplz -o 3`` on corpus.txt; query.txt is KenLM's
``query -v sentence`` output of lmplz.arpa on test.txt. tests/models/test_kenlm_anchor.py reads
them.

The pruned models (tests/models/test_ngram_prune.py reads them): for each NAME of ``PRUNED``,
NAME.arpa is lmplz's ``-o 3`` model with NAME's options and NAME.query.txt the per-sentence
totals of ``query -v sentence`` on test.txt (its "Total:" lines). vocab.txt, the list of
``--limit_vocab_file``, holds every other word of the corpus in sorted order and one word
that is not in it.
"""

import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = HERE.parents[2] / ".kenlm" / "bin"
VOCAB = str(HERE / "vocab.txt")
# name -> lmplz options; the tests build the same models with elman
PRUNED = {
    "prune-011": ["--prune", "0", "1", "1"],
    "limit-vocab": ["--limit_vocab_file", VOCAB],
    "prune-112-limit-vocab": ["--prune", "1", "1", "2", "--limit_vocab_file", VOCAB],
}


def sentences(rng: np.random.Generator, n: int, words: list[str]) -> list[str]:
    V = len(words)
    # each word has a handful of likely successors (a sparse chain) plus a Zipfian background
    successors = rng.integers(0, V, size=(V, 4))
    zipf = 1.0 / np.arange(1, V + 1)
    zipf /= zipf.sum()
    out = []
    for _ in range(n):
        w = int(rng.choice(V, p=zipf))
        line = [words[w]]
        while len(line) < 20 and rng.random() > 0.12:
            w = (
                int(successors[w, rng.integers(4)])
                if rng.random() < 0.7
                else int(rng.choice(V, p=zipf))
            )
            line.append(words[w])
        out.append(" ".join(line))
    return out


def lmplz(arpa: Path, *options: str) -> None:
    subprocess.run(
        [str(BIN / "lmplz"), "-o", "3", "-S", "100M", "--text", str(HERE / "corpus.txt"),
         "--arpa", str(arpa), *options], check=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def query(arpa: Path) -> str:
    with (HERE / "test.txt").open() as fin:
        return subprocess.run(
            [str(BIN / "query"), "-v", "sentence", str(arpa)],
            stdin=fin, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip


def main() -> None:
    rng = np.random.default_rng(20)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du"]
    words = sorted({"".join(rng.choice(syllables, size=3)) for _ in range(3000)})[:800]
    (HERE / "corpus.txt").write_text("\n".join(sentences(rng, 600, words)) + "\n")
    test = sentences(rng, 60, words) + ["kalomi unseenword tapo", "zzz"]
    (HERE / "test.txt").write_text("\n".join(test) + "\n")
    lmplz(HERE / "lmplz.arpa")
    (HERE / "query.txt").write_text(query(HERE / "lmplz.arpa"))

    seen = sorted(set((HERE / "corpus.txt").read_text().split()))
    (HERE / "vocab.txt").write_text("\n".join([*seen[::2], "unseenword"]) + "\n")
    for name, options in PRUNED.items():
        lmplz(HERE / f"{name}.arpa", *options)
        totals = [line for line in query(HERE / f"{name}.arpa").splitlines() if "Total:" in line]
        (HERE / f"{name}.query.txt").write_text("\n".join(totals) + "\n")


if __name__ == "__main__":
    main()
