"""elman against KenLM, end to end as a user runs them: build a 5-gram, write ARPA and binary
models, score a test set.

    bash benchmarks/kenlm.sh                      # once: lmplz, build_binary, query in .kenlm/bin
    ELMAN_DATA=/path/to/corpora python benchmarks/ngram_kenlm.py [--corpora ptb wikitext-2]
    python benchmarks/ngram_kenlm.py --corpora .data/scale-1M .data/scale-10M --reps 1 \
        --out benchmarks/results/ngram_kenlm_scale.json     # folders of benchmarks/scale_corpus.py

Per corpus, each command runs as its own process, timed from start to exit (wall time, CPU
time and peak resident memory from ``wait4``):

* elman: ``elman ngram build --order 5 --data train.txt --out m.arpa``, then ``elman ngram
  binary m.arpa m.bin``, then ``elman ngram eval m.bin`` (load + score); and the binary model
  straight from the corpus, ``elman ngram build … --binary --out m.bin``;
* KenLM: ``lmplz -o 5 -S 1G -T TMP --text train.txt --arpa k.arpa``, then
  ``build_binary k.arpa k.bin`` (probing), then ``query k.bin < test.txt`` (load + score).

Both read copies of the corpus in which ``<unk>`` is replaced by an ordinary token (``UNKWORD``;
lmplz refuses ``<unk>`` as a corpus word), so the two models have the same vocabulary and must
give the same perplexity. Three perplexities of the test copy are recorded: elman's model scored
by elman, KenLM's model scored by KenLM's ``query``, and KenLM's ARPA file (real lmplz output)
read and scored by elman. The sorting memory is given to both (``--memory``, default 1G, ample
for PTB and WikiText-2: lmplz's ``-S`` and elman's ``--memory``): lmplz's default, 80% of RAM,
makes it allocate and touch gigabytes even for a tiny corpus (20 s and 4.5 GB peak for 3,000
PTB lines on this machine). ``--no-convert`` skips the steps that read ARPA text in Python
(``elman ngram binary`` and scoring lmplz's file), minutes at 100M tokens. ``--reps``
repeats each command and keeps the median wall time. The record goes to
benchmarks/results/ngram_kenlm.json with the commit (``-dirty`` when the tree
is: run from a clean one) and KenLM's commit from .kenlm/COMMIT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KENLM = ROOT / ".kenlm" / "bin"
UNK_STANDIN = "UNKWORD"
ORDER = 5


def timed(argv: list[str], *, stdin: Path | None = None) -> dict:
    """Run ``argv`` to completion: its wall time, CPU time (user + system) and peak resident
    memory, the last two from ``wait4`` (this child's own, not a sum over children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=fin, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if stdin:
            fin.close()  # type: ignore[union-attr]
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024.0,  # Linux: KiB
        "stdout": stdout,
        "stderr": stderr,
    }


def measured(argv: list[str], reps: int, **kw) -> dict:
    """``timed`` ``reps`` times: medians of wall and CPU time, the largest peak memory."""
    runs = [timed(argv, **kw) for _ in range(reps)]
    return {
        "command": " ".join(argv),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "wall_s_all": [r["wall_s"] for r in runs],
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_mb": max(r["peak_mb"] for r in runs),
        "stdout": runs[-1]["stdout"][-4000:],
        "stderr": runs[-1]["stderr"][-4000:],
    }


def copy_with_standin(source: Path, path: Path) -> int:
    """Copy ``source`` to ``path`` with <unk> replaced, a line at a time: the benchmark's own
    memory stays small, for ``wait4``'s peak of a child counts what it had when forked."""
    words = 0
    with source.open(encoding="utf-8") as lines, path.open("w", encoding="utf-8") as f:
        for line in lines:
            tokens = [UNK_STANDIN if w == "<unk>" else w for w in line.split()]
            words += len(tokens)
            f.write(" ".join(tokens) + "\n")
    return words


def query_perplexity(text: str) -> float:
    m = re.search(r"Perplexity including OOVs:\s*([0-9.eE+-]+)", text)
    if not m:
        raise SystemExit(f"no perplexity in KenLM query's output:\n{text[-2000:]}")
    return float(m.group(1))


def elman_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "elman", *args]


def one_corpus(name: str, reps: int, tmp: Path, memory: str = "1G", convert: bool = True) -> dict:
    from elman.data.datasets import resolve
    from elman.models.ngram import read_arpa

    ds = resolve(name)
    label = Path(name).name  # a dataset name or a folder (benchmarks/scale_corpus.py)
    train, test = tmp / f"{label}.train.txt", tmp / f"{label}.test.txt"
    out: dict = {"corpus": name, "order": ORDER}
    out["train_words"] = copy_with_standin(ds.path("train"), train)
    out["test_words"] = copy_with_standin(ds.path("test"), test)
    e_arpa, e_bin, k_arpa, k_bin = (
        tmp / f"{label}.{x}" for x in ("e.arpa", "e.bin", "k.arpa", "k.bin")
    )
    # elman: build (ARPA), convert to binary, score from a fresh process
    build = ["ngram", "build", "--order", str(ORDER), "--data", str(train)]
    build += ["--memory", memory, "--temp-dir", str(tmp)]  # as lmplz -S and -T
    elman = {"build_arpa": measured(elman_cmd(*build, "--out", str(e_arpa)), reps)}
    if convert:  # reading ARPA text is Python's, line by line: minutes for gigabytes
        elman["binary"] = measured(elman_cmd("ngram", "binary", str(e_arpa), str(e_bin)), reps)
    # the binary model straight from the corpus, no ARPA text in between
    elman["build_binary"] = measured(elman_cmd(*build, "--binary", "--out", str(e_bin)), reps)
    elman["query"] = measured(
        elman_cmd("ngram", "eval", str(e_bin), "--data", str(test), "--json"), reps
    )
    elman["arpa_mb"] = e_arpa.stat().st_size / 2**20
    elman["binary_mb"] = e_bin.stat().st_size / 2**20
    elman["perplexity"] = json.loads(elman["query"]["stdout"])["perplexity"]
    out["elman"] = elman
    if not (KENLM / "lmplz").is_file():
        out["kenlm"] = None
        return out
    kenlm = {
        "build_arpa": measured(
            [
                str(KENLM / "lmplz"),
                "-o",
                str(ORDER),
                "-S",
                memory,
                "-T",
                str(tmp),
                "--text",
                str(train),
                "--arpa",
                str(k_arpa),
            ],
            reps,
        ),
        "binary": measured([str(KENLM / "build_binary"), str(k_arpa), str(k_bin)], reps),
        "query": measured([str(KENLM / "query"), "-v", "summary", str(k_bin)], reps, stdin=test),
    }
    kenlm["arpa_mb"] = k_arpa.stat().st_size / 2**20
    kenlm["binary_mb"] = k_bin.stat().st_size / 2**20
    kenlm["perplexity"] = query_perplexity(kenlm["query"]["stdout"])
    out["kenlm"] = kenlm
    e, k = elman["perplexity"], kenlm["perplexity"]
    out["perplexity_relative_difference"] = abs(e - k) / k
    if convert:  # real lmplz output, read and scored by elman
        start = time.perf_counter()
        lm = read_arpa(k_arpa)
        theirs = lm.perplexity(test.read_text().splitlines()).perplexity
        out["elman_reads_kenlm_arpa"] = {
            "perplexity": theirs, "read_s": time.perf_counter() - start,
        }  # fmt: skip
        out["kenlm_arpa_relative_difference"] = abs(theirs - k) / k
    for stage in ("build_arpa", "binary", "query"):
        if stage in elman:
            out[f"{stage}_wall_ratio"] = elman[stage]["wall_s"] / kenlm[stage]["wall_s"]
    # a binary model from the corpus: elman in one command, KenLM lmplz then build_binary
    kenlm_binary = kenlm["build_arpa"]["wall_s"] + kenlm["binary"]["wall_s"]
    out["binary_output_wall_ratio"] = elman["build_binary"]["wall_s"] / kenlm_binary
    return out


def summary(r: dict) -> str:
    e, k = r["elman"], r["kenlm"]
    lines = [f"{r['corpus']} ({r['train_words']:,} words), order {r['order']}"]
    for stage in ("build_arpa", "binary", "query"):
        if stage not in e:
            continue
        line = f"  {stage:10s} elman {e[stage]['wall_s']:6.2f} s {e[stage]['peak_mb']:6.0f} MB"
        if k:
            line += (
                f" | KenLM {k[stage]['wall_s']:6.2f} s {k[stage]['peak_mb']:6.0f} MB"
                f" | ratio {r[stage + '_wall_ratio']:.2f}"
            )
        lines.append(line)
    if k:
        kb = k["build_arpa"]["wall_s"] + k["binary"]["wall_s"]
        lines.append(
            f"  corpus -> binary: elman build --binary {e['build_binary']['wall_s']:.2f} s | "
            f"KenLM lmplz + build_binary {kb:.2f} s | ratio {r['binary_output_wall_ratio']:.2f}"
        )
    lines.append(f"  perplexity elman {e['perplexity']:.4f}")
    if k:
        lines[-1] += f" | KenLM query {k['perplexity']:.4f}"
    if "elman_reads_kenlm_arpa" in r:
        lines[-1] += (
            f" | KenLM's ARPA read by elman {r['elman_reads_kenlm_arpa']['perplexity']:.4f}"
        )
    return "\n".join(lines)


def compile_bytecode() -> None:
    """Compile elman's modules once, as ``pip install`` does. With PYTHONDONTWRITEBYTECODE set
    (this machine sets it) a fresh worktree has no bytecode, and every timed command would
    compile each module it imports again: some 60 ms of `elman ngram eval`'s start."""
    import compileall

    import elman

    compileall.compile_dir(Path(elman.__file__).parent, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", default=["ptb", "wikitext-2"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--memory", default="1G", help="lmplz -S and elman ngram build --memory (default: 1G)"
    )
    parser.add_argument(
        "--no-convert", action="store_true",
        help="skip elman ngram binary (ARPA to binary) and reading lmplz's ARPA file in elman",
    )  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ngram_kenlm.json"))
    args = parser.parse_args()
    from elman.files import write_json
    from elman.provenance import command_line, machine, provenance

    if not (KENLM / "lmplz").is_file():
        print(f"KenLM is absent ({KENLM}): elman alone; build it with bash benchmarks/kenlm.sh")
    commit_file = ROOT / ".kenlm" / "COMMIT"
    compile_bytecode()
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.corpora:
            r = one_corpus(name, args.reps, Path(tmp), args.memory, not args.no_convert)
            print(summary(r), flush=True)
            results.append(r)
    record = {
        "benchmark": "ngram_kenlm",
        "results": results,
        "kenlm_commit": commit_file.read_text().strip() if commit_file.is_file() else None,
        "machine": machine(load_before),
        **provenance(command=command_line(prog="python benchmarks/ngram_kenlm.py")),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)  # atomically
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
