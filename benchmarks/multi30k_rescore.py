"""N-best rescoring of a Multi30k translation model with English language models (issue #17).

    python benchmarks/multi30k_rescore.py --model runs/multi30k-attention \
        --lm runs/multi30k-en-lstm --lm runs/multi30k-en-kn5.arpa --k 10 \
        --out results/multi30k-attention-rescore.json

For val and test_2016_flickr: ``elman translate MODEL --n-best K`` writes the K best
translations of every German sentence (beam K); ``elman rescore`` tunes the weights of the
list's own score, each LM's log-probability and the length on val (maximising sacreBLEU, its
coordinate ascent) and re-ranks test with them. Reported, with sacreBLEU (cased, 13a) and chrF:
the lists' own 1-best (before), the re-ranked 1-best (after), the oracle (for each sentence the
hypothesis of the highest sentence BLEU: what a perfect reranker could reach), and the tuned
weights. Every command run is recorded, and the record is a results file (``elman results``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"valid": "val", "test": "test_2016_flickr"}


def elman(args: list[str], log: list[str]) -> None:
    """Run ``elman ARGS``; its command goes into the record."""
    log.append("elman " + " ".join(args))
    subprocess.run([sys.executable, "-m", "elman", *args], check=True)


def first_best(nbest: Path) -> list[str]:
    """The first hypothesis of every id of a Moses n-best list, in id order."""
    from elman.data.nbest import read_moses

    return [entries[0].text for entries in read_moses(nbest).lists.values()]


def oracle(nbest: Path, refs: list[str]) -> list[str]:
    """For each sentence the hypothesis with the highest sentence BLEU against its reference."""
    import sacrebleu

    from elman.data.nbest import read_moses

    lists = list(read_moses(nbest).lists.values())
    return [
        max(
            (h.text for h in hyps),
            key=lambda t, r=ref: sacrebleu.sentence_bleu(t, [r]).score,
        )
        for hyps, ref in zip(lists, refs, strict=True)
    ]


def scores(hypotheses: list[str], refs: list[str]) -> dict[str, float]:
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU().corpus_score(hypotheses, [refs])
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [refs])
    return {"bleu": bleu.score, "chrf": chrf.score, "sentences": len(refs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the translation run folder or .pt")
    parser.add_argument("--lm", action="append", required=True, help="an English LM (repeat)")
    parser.add_argument("--k", type=int, default=10, help="hypotheses per sentence (10)")
    parser.add_argument("--out", required=True, help="the results file to write")
    parser.add_argument(
        "--work",
        help="keep the n-best lists here, and reuse the ones already there (default: a "
        "temporary folder)",
    )
    parser.add_argument("--name", help="the record's name (default: MODEL-rescore)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from elman.data.parallel import resolve_parallel
    from elman.files import check_writable, write_json, write_text
    from elman.provenance import command_line, provenance

    check_writable(args.out, "results file")
    start = time.perf_counter()
    corpus = resolve_parallel("multi30k", "de-en")
    log: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        refs = {}
        for split in SPLITS:
            sources, refs[split] = corpus.pairs(split)
            write_text(work / f"{split}.de", "\n".join(sources) + "\n")
            write_text(work / f"{split}.en", "\n".join(refs[split]) + "\n")
            nbest = work / f"{split}.nbest"
            if nbest.exists():  # the same model's lists, from an earlier run with this --work
                log.append(f"reused {nbest}")
                continue
            elman(["translate", args.model, str(work / f"{split}.de"), "--n-best", str(args.k),
                   "--out", str(nbest)], log)  # fmt: skip
        lms = [a for lm in args.lm for a in ("--lm", lm)]
        weights = work / "weights.json"
        elman(["rescore", str(work / "valid.nbest"), *lms, "--tune", str(work / "valid.nbest"),
               "--refs", str(work / "valid.en"), "--metric", "bleu", "--save-weights",
               str(weights), "--out", str(work / "valid.best")], log)  # fmt: skip
        elman(["rescore", str(work / "test.nbest"), *lms, "--weights", str(weights),
               "--out", str(work / "test.best")], log)  # fmt: skip
        metrics, before, oracles = {}, {}, {}
        for split in SPLITS:
            after = (work / f"{split}.best").read_text(encoding="utf-8").split("\n")[:-1]
            metrics[split] = {**scores(after, refs[split]), "split": SPLITS[split]}
            before[split] = scores(first_best(work / f"{split}.nbest"), refs[split])
            oracles[split] = scores(oracle(work / f"{split}.nbest", refs[split]), refs[split])
        tuned = json.loads(weights.read_text())
    gain = metrics["test"]["bleu"] - before["test"]["bleu"]
    record = {
        "recipe": args.name or Path(args.model).name + "-rescore",
        "aim": "n-best rescoring with English LMs tuned on val: >= +0.5 test BLEU (issue #17)",
        "task": "rescore",
        "dataset": "multi30k",
        "metrics": metrics,
        "before": before,
        "oracle": oracles,
        "test_bleu_gain": gain,
        "weights": tuned,
        "k": args.k,
        "model": args.model,
        "lms": args.lm,
        "steps": log,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance("cpu", command_line(prog="python benchmarks/multi30k_rescore.py")),
    }
    write_json(args.out, record)
    for split in SPLITS:
        print(
            f"{split}: BLEU {before[split]['bleu']:.2f} -> {metrics[split]['bleu']:.2f} "
            f"(oracle {oracles[split]['bleu']:.2f}), chrF {before[split]['chrf']:.2f} -> "
            f"{metrics[split]['chrf']:.2f}"
        )
    print(f"test BLEU gain {gain:+.2f}; weights {tuned}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
