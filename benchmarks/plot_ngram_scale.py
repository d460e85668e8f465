"""The n-gram build time against corpus size, elman and KenLM, from the benchmark records.

    python benchmarks/plot_ngram_scale.py    # -> docs/img/ngram_scale.png

Reads benchmarks/results/ngram_kenlm.json (PTB, WikiText-2) and ngram_kenlm_scale.json (the
sampled corpora of benchmarks/scale_corpus.py) and plots, per training corpus size in words,
the wall time from the corpus to an ARPA file and to a binary model for each tool, on log-log
axes with a line of slope 1 (linear cost) for reference.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ["ngram_kenlm.json", "ngram_kenlm_scale.json"]


def points() -> list[dict]:
    out = []
    for name in RECORDS:
        path = ROOT / "benchmarks" / "results" / name
        if path.is_file():
            out += [r for r in json.loads(path.read_text())["results"] if r.get("kenlm")]
    return sorted(out, key=lambda r: r["train_words"])


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = points()
    words = [r["train_words"] for r in rs]
    series = {
        "elman build → ARPA": [r["elman"]["build_arpa"]["wall_s"] for r in rs],
        "elman build --binary": [r["elman"]["build_binary"]["wall_s"] for r in rs],
        "KenLM lmplz → ARPA": [r["kenlm"]["build_arpa"]["wall_s"] for r in rs],
        "KenLM lmplz + build_binary": [
            r["kenlm"]["build_arpa"]["wall_s"] + r["kenlm"]["binary"]["wall_s"] for r in rs
        ],
    }
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (label, seconds), style in zip(series.items(), ["o-", "s-", "o--", "s--"], strict=True):
        ax.plot(words, seconds, style, label=label)
    first = series["KenLM lmplz → ARPA"][0]
    ax.plot(words, [first * w / words[0] for w in words], ":", color="grey", label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training words")
    ax.set_ylabel("wall time, start to written model (s)")
    ax.set_title("5-gram modified Kneser-Ney, end to end (2 shared cores)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "ngram_scale.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
