"""Ensembles of Multi30k translation models, measured (issue #17).

    python benchmarks/multi30k_ensemble.py --seeds 1 2 3 --device cuda \
        --work runs/m30k-ensemble --out results/multi30k-attention-ensemble.json

Trains ``recipes/multi30k-attention.toml`` once per seed (the runs side by side, one process
each), then translates val and test_2016_flickr with the recipe's beam (5) by each model alone
and by the ensembles of the first 2 and of all the seeds (``elman translate A --ensemble B …``:
the mean of the models' next-piece distributions at every step). Reported with sacreBLEU (cased,
13a) and chrF; every command run is recorded, and the record is a results file
(``elman results``). The seeds' subword vocabularies are learned from the same training split
by sentencepiece, which does not depend on the seed, so the models can be ensembled.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "multi30k-attention.toml"
SPLITS = {"valid": "val", "test": "test_2016_flickr"}


def elman_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "elman", *args]


def scores(hypotheses: list[str], refs: list[str]) -> dict[str, float]:
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU().corpus_score(hypotheses, [refs])
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [refs])
    return {"bleu": bleu.score, "chrf": chrf.score, "sentences": len(refs)}


def train_all(seeds: list[int], device: str, work: Path, extra: list[str], log: list[str]) -> None:
    """One ``elman train`` per seed, all at once; a run already finished is kept."""
    procs = []
    for seed in seeds:
        run = work / f"s{seed}"
        if (run / "best.pt").exists() and (run / "done").exists():
            log.append(f"reused {run}")
            continue
        args = ["train", str(RECIPE.relative_to(ROOT)), "--set", f"train.seed={seed}",
                "--set", f"train.device={device}", "--set",
                f"recipe.name=multi30k-attention-s{seed}", *extra, "--out", str(run)]  # fmt: skip
        log.append("elman " + " ".join(args))
        run.mkdir(parents=True, exist_ok=True)
        with open(work / f"s{seed}.log", "w") as out:
            procs.append((run, subprocess.Popen(elman_command(args), stdout=out, stderr=out)))
    for run, proc in procs:
        if proc.wait() != 0:
            sys.exit(f"training {run} failed: see {run}.log")
        (run / "done").write_text("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--device", default="cuda", help="for training and decoding (cuda)")
    parser.add_argument("--work", required=True, help="the run folders go here (kept)")
    parser.add_argument("--out", required=True, help="the results file to write")
    parser.add_argument(
        "--set", action="append", default=[], help="one more recipe override for every run"
    )
    parser.add_argument("--limit", type=int, help="translate only the first N sentences (a test)")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds: at least 2, to ensemble")
    sys.path.insert(0, str(ROOT / "src"))
    import torch  # noqa: F401  (loaded, so that the provenance names the GPU)

    from elman.data.parallel import resolve_parallel
    from elman.files import check_writable, write_json, write_text
    from elman.provenance import command_line, provenance

    check_writable(args.out, "results file")
    start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    train_all(args.seeds, args.device, work, [a for s in args.set for a in ("--set", s)], log)
    train_s = time.perf_counter() - start
    corpus = resolve_parallel("multi30k", "de-en")
    runs = [str(work / f"s{seed}") for seed in args.seeds]
    models = {f"seed {s}": [r] for s, r in zip(args.seeds, runs, strict=True)}
    for n in sorted({2, len(runs)}):
        models[f"ensemble of {n}"] = runs[:n]
    metrics: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
    for split, name in SPLITS.items():
        sources, refs = corpus.pairs(split)
        sources, refs = sources[: args.limit], refs[: args.limit]
        source = work / f"{split}.de"
        write_text(source, "\n".join(sources) + "\n")
        for label, members in models.items():
            hyp = work / f"{split}.{label.replace(' ', '_')}.en"
            cmd = ["translate", members[0], str(source), "--out", str(hyp), "--device",
                   args.device]  # fmt: skip
            if len(members) > 1:
                cmd += ["--ensemble", *members[1:]]
            log.append("elman " + " ".join(cmd))
            subprocess.run(elman_command(cmd), check=True)
            lines = hyp.read_text(encoding="utf-8").split("\n")[:-1]
            metrics[label][split] = {**scores(lines, refs), "split": name}
            print(f"{split} {label}: BLEU {metrics[label][split]['bleu']:.2f}", flush=True)
    singles = [metrics[f"seed {s}"]["test"]["bleu"] for s in args.seeds]
    record = {
        "recipe": "multi30k-attention-ensemble",
        "aim": "BLEU of single models and of 2- and 3-model ensembles (issue #17)",
        "task": "translate",
        "dataset": "multi30k",
        "metrics": {"test": metrics[f"ensemble of {len(runs)}"]["test"]},
        "models": metrics,
        "single_test_bleu_mean": sum(singles) / len(singles),
        "seeds": args.seeds,
        "overrides": args.set,
        "limit": args.limit,
        "steps": log,
        "train_wall_time_s": round(train_s, 1),
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance(args.device, command_line(prog="python benchmarks/multi30k_ensemble.py")),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
