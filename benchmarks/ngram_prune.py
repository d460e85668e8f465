"""Size against perplexity of pruned 5-grams: elman's ``--prune``/``--limit-vocab`` beside lmplz's.

    bash benchmarks/kenlm.sh                      # once: lmplz and query in .kenlm/bin
    ELMAN_DATA=/path/to/corpora python benchmarks/ngram_prune.py [--corpora ptb wikitext-2]

For each corpus and each setting of ``SETTINGS`` (count thresholds per order, as ``lmplz
--prune``; one row with ``--limit_vocab_file`` too), elman builds the interpolated modified
Kneser-Ney 5-gram in-process (``NgramLM.build``), writes it as ARPA and scores the test split;
KenLM builds it with ``lmplz -o 5 -S 1G --prune ...`` and scores its own ARPA file with
``query``. Both read copies of the corpus in which ``<unk>`` is replaced by ``UNKWORD`` (lmplz
refuses ``<unk>`` as a word), so the models have the same vocabulary. Recorded per row: the
n-gram counts per order and in total, the ARPA file's size (elman writes float64 values in
their shortest round-trip form, lmplz float32 ones, so elman's file is larger for the same
n-grams), the test perplexity (OOVs scored as ``<unk>``) and its relative difference, and the
build times (elman in-process, lmplz as a process). The limited vocabulary is the training
split's ``LIMIT`` most frequent words. The record goes to benchmarks/results/ngram_prune.json
with the commit (``-dirty`` when the tree is: run from a clean one) and KenLM's from
.kenlm/COMMIT.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KENLM = ROOT / ".kenlm" / "bin"
UNK_STANDIN = "UNKWORD"
ORDER = 5
LIMIT = 5000
# name -> (thresholds per order 1..5, limit the vocabulary)
SETTINGS: dict[str, tuple[tuple[int, ...], bool]] = {
    "none": ((), False),
    "0 0 0 0 1": ((0, 0, 0, 0, 1), False),
    "0 0 1 1 1": ((0, 0, 1, 1, 1), False),
    "0 1 1 1 1": ((0, 1, 1, 1, 1), False),
    "0 1 2 3 4": ((0, 1, 2, 3, 4), False),
    "0 2 2 2 2": ((0, 2, 2, 2, 2), False),
    "1 1 1 1 1": ((1, 1, 1, 1, 1), False),
    f"none, {LIMIT} words": ((), True),
    f"0 1 1 1 1, {LIMIT} words": ((0, 1, 1, 1, 1), True),
}


def standin(lines: list[str]) -> list[str]:
    return [" ".join(UNK_STANDIN if w == "<unk>" else w for w in line.split()) for line in lines]


def arpa_counts(path: Path) -> list[int]:
    counts = []
    with path.open() as f:
        for line in f:
            if line.startswith("ngram "):
                counts.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams"):
                return counts
    raise SystemExit(f"{path}: no ARPA header")


def elman_row(train: list[str], test: list[str], prune, vocab, arpa: Path) -> dict:
    from elman.models.ngram import NgramConfig, NgramLM, write_arpa

    start = time.perf_counter()
    lm = NgramLM.build(train, NgramConfig(order=ORDER, prune=prune, limit_vocab=vocab))
    build_s = time.perf_counter() - start
    write_arpa(lm, arpa)
    ppl = lm.perplexity(test)
    return {
        "counts": lm.counts(),
        "total": sum(lm.counts()),
        "arpa_mb": arpa.stat().st_size / 1e6,
        "perplexity": ppl.perplexity,
        "oovs": ppl.oovs,
        "build_s": build_s,
    }


def kenlm_row(train: Path, test: Path, prune, vocab: Path | None, tmp: Path) -> dict:
    arpa = tmp / "k.arpa"
    argv = [str(KENLM / "lmplz"), "-o", str(ORDER), "-S", "1G", "-T", str(tmp), "--text",
            str(train), "--arpa", str(arpa)]  # fmt: skip
    if prune:
        argv += ["--prune", *map(str, prune)]
    if vocab is not None:
        argv += ["--limit_vocab_file", str(vocab)]
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    build_s = time.perf_counter() - start
    with test.open() as fin:
        out = subprocess.run(
            [str(KENLM / "query"), "-v", "summary", str(arpa)],
            stdin=fin, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    m = re.search(r"Perplexity including OOVs:\s*([0-9.eE+-]+)", out)
    if not m:
        raise SystemExit(f"no perplexity in KenLM query's output:\n{out[-2000:]}")
    counts = arpa_counts(arpa)
    row = {
        "command": " ".join(argv),
        "counts": counts,
        "total": sum(counts),
        "arpa_mb": arpa.stat().st_size / 1e6,
        "perplexity": float(m.group(1)),
        "build_s": build_s,
    }
    arpa.unlink()
    return row


def one_corpus(name: str, tmp: Path) -> list[dict]:
    from elman.data.datasets import resolve

    ds = resolve(name)
    train, test = standin(ds.lines("train")), standin(ds.lines("test"))
    train_file, test_file, vocab_file = tmp / "train.txt", tmp / "test.txt", tmp / "vocab.txt"
    train_file.write_text("\n".join(train) + "\n")
    test_file.write_text("\n".join(test) + "\n")
    frequent = [w for w, _ in Counter(" ".join(train).split()).most_common(LIMIT)]
    vocab_file.write_text("\n".join(frequent) + "\n")
    rows = []
    for setting, (prune, limited) in SETTINGS.items():
        vocab = frozenset(frequent) if limited else None
        row: dict = {"corpus": name, "setting": setting, "prune": list(prune), "limit": limited}
        row["elman"] = elman_row(train, test, prune, vocab, tmp / "e.arpa")
        (tmp / "e.arpa").unlink()
        if (KENLM / "lmplz").is_file():
            k = kenlm_row(train_file, test_file, prune, vocab_file if limited else None, tmp)
            row["kenlm"] = k
            row["same_counts"] = row["elman"]["counts"] == k["counts"]
            e = row["elman"]["perplexity"]
            row["perplexity_relative_difference"] = abs(e - k["perplexity"]) / k["perplexity"]
        print(line(row), flush=True)
        rows.append(row)
    return rows


def line(r: dict) -> str:
    e, k = r["elman"], r.get("kenlm")
    text = (
        f"{r['corpus']:10s} {r['setting']:22s} elman {e['total']:>9,} n-grams "
        f"{e['arpa_mb']:6.1f} MB ppl {e['perplexity']:.4f}"
    )
    if k:
        text += (
            f" | lmplz {k['total']:>9,} {k['arpa_mb']:6.1f} MB ppl {k['perplexity']:.4f}"
            f" | rel {r['perplexity_relative_difference']:.1e}"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", default=["ptb", "wikitext-2"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ngram_prune.json"))
    args = parser.parse_args()
    from elman.files import write_json
    from elman.provenance import command_line, machine, provenance

    if not (KENLM / "lmplz").is_file():
        print(f"KenLM is absent ({KENLM}): elman alone; build it with bash benchmarks/kenlm.sh")
    commit_file = ROOT / ".kenlm" / "COMMIT"
    load_before = os.getloadavg()
    rows = []
    for name in args.corpora:
        with tempfile.TemporaryDirectory() as tmp:
            rows += one_corpus(name, Path(tmp))
    record = {
        "benchmark": "ngram_prune",
        "order": ORDER,
        "limit_vocab_words": LIMIT,
        "results": rows,
        "kenlm_commit": commit_file.read_text().strip() if commit_file.is_file() else None,
        "machine": machine(load_before),
        **provenance(command=command_line(prog="python benchmarks/ngram_prune.py")),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
