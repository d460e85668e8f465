"""Regenerate this folder's KenLM fixture (needs .kenlm/bin from benchmarks/kenlm.sh):

    python tests/data/kenlm/make.py

corpus.txt and test.txt are synthetic sentences (a random sparse bigram chain over 800 made-up
words, seeded); lmplz.arpa is KenLM's ``lmplz -o 3`` on corpus.txt; query.txt is KenLM's
``query -v sentence`` output of lmplz.arpa on test.txt. tests/models/test_kenlm_anchor.py reads
them.
"""

import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = HERE.parents[2] / ".kenlm" / "bin"


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


def main() -> None:
    rng = np.random.default_rng(20)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du"]
    words = sorted({"".join(rng.choice(syllables, size=3)) for _ in range(3000)})[:800]
    (HERE / "corpus.txt").write_text("\n".join(sentences(rng, 600, words)) + "\n")
    test = sentences(rng, 60, words) + ["kalomi unseenword tapo", "zzz"]
    (HERE / "test.txt").write_text("\n".join(test) + "\n")
    subprocess.run(
        [str(BIN / "lmplz"), "-o", "3", "-S", "100M", "--text", str(HERE / "corpus.txt"),
         "--arpa", str(HERE / "lmplz.arpa")], check=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with (HERE / "test.txt").open() as fin, (HERE / "query.txt").open("w") as fout:
        subprocess.run(
            [str(BIN / "query"), "-v", "sentence", str(HERE / "lmplz.arpa")],
            stdin=fin, stdout=fout, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip


if __name__ == "__main__":
    main()
