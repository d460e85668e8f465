"""The n-gram build time against corpus size, elman and KenLM, from the benchmark records.

    python benchmarks/plot_ngram_scale.py    # -> docs/img/ngram_scale.png

Reads benchmarks/results/ngram_kenlm.json (PTB, WikiText-2), ngram_kenlm_scale.json and
ngram_kenlm_100M.json (the sampled corpora of benchmarks/scale_corpus.py) and plots, per
training corpus size in words, the wall time from the corpus to an ARPA file and to a binary
model for each tool (log-log, with a line of slope 1, linear cost, for reference), and beside
it the peak memory of the builds.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ["ngram_kenlm.json", "ngram_kenlm_scale.json", "ngram_kenlm_100M.json"]


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
    fig, (ax, mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, seconds), style in zip(series.items(), ["o-", "s-", "o--", "s--"], strict=True):
        ax.plot(words, seconds, style, label=label)
    peaks = {
        "elman build → ARPA": [r["elman"]["build_arpa"]["peak_mb"] for r in rs],
        "elman build --binary": [r["elman"]["build_binary"]["peak_mb"] for r in rs],
        "KenLM lmplz": [r["kenlm"]["build_arpa"]["peak_mb"] for r in rs],
    }
    for (label, mb), style in zip(peaks.items(), ["o-", "s-", "o--"], strict=True):
        mem.plot(words, [m / 1024 for m in mb], style, label=label)
    mem.set_xscale("log")
    mem.set_xlabel("training words")
    mem.set_ylabel("peak resident memory (GB)")
    mem.set_title("peak memory of the build")
    mem.legend(fontsize=8)
    first = series["KenLM lmplz → ARPA"][0]
    ax.plot(words, [first * w / words[0] for w in words], ":", color="grey", label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training words")
    ax.set_ylabel("wall time, start to written model (s)")
    ax.set_title("5-gram modified Kneser-Ney, end to end (2 cores)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "ngram_scale.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
