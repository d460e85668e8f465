"""``elman results [--readme README.md]``: the results table, built from ``results/*.json``.

Every number in the README's table comes from a results file written by a run of the committed
code (``elman train … --results results/NAME.json``, ``elman ngram eval … --json``); this command
only formats them, between the markers ``<!-- results:start -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elman.errors import ElmanError

START, END = "<!-- results:start -->", "<!-- results:end -->"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results", help="print (or write into the README) the results table", description=__doc__
    )
    p.add_argument("--dir", default="results", help="folder of results JSON files")
    p.add_argument("--readme", help="rewrite the table between the markers in this file")
    p.set_defaults(func=run)


def _metric(split: dict) -> str:
    if not split:
        return "–"
    if "bpc" in split:
        return f"{split['bpc']:.3f} bpc (loss {split['loss']:.3f})"
    if "bleu" in split:
        return f"BLEU {split['bleu']:.1f}"
    if "mse" in split:
        return f"MSE {split['mse']:.4f}"
    if "accuracy" in split:
        return f"{100 * split['accuracy']:.2f}%"
    if "ppl" in split:
        return f"{split['ppl']:.1f}"
    return "–"


def results_table(folder: str | Path = "results") -> str:
    """A Markdown table with one row per results file (sorted by name)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ElmanError(f"no results files in {folder}; run a recipe with --results first")
    rows = [
        "| recipe | aim | valid | test | wall time | device | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in files:
        try:
            r = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ElmanError(f"results file {path} is not valid JSON ({err})") from None
        metrics = r.get("metrics", {})
        wall = r.get("wall_time_s")
        wall_s = f"{wall / 60:.1f} min" if isinstance(wall, int | float) else "–"
        if str(r.get("task", "")).startswith("eval") and wall_s != "–":
            wall_s = "eval " + wall_s  # `elman eval --results`: scoring time, not training
        cpu = r.get("cpu_time_s")  # the process's CPU time: the wall time of idle cores
        if isinstance(cpu, int | float):
            wall_s += f" ({cpu / 60:.1f} CPU min)"
        command = f"`{r.get('command', '')}`"
        resumes = len(r.get("sessions", [])) - 1
        if resumes > 0:  # the run went on with `elman train --resume` (listed in the file)
            command += f", resumed {resumes}× (`sessions` in {path.name})"
        rows.append(
            f"| {r.get('recipe', path.stem)} | {r.get('aim', '')} | {_metric(metrics.get('valid'))}"
            f" | {_metric(metrics.get('test'))} | {wall_s} | {r.get('device', '')} | {command} |"
        )
    return "\n".join(rows)


def write_readme(readme: str | Path, folder: str | Path = "results") -> None:
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ElmanError(f"{readme} has no {START} … {END} markers to write the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{results_table(folder)}\n{END}{tail}")


def run(args: argparse.Namespace) -> int:
    if args.readme:
        write_readme(args.readme, args.dir)
    else:
        print(results_table(args.dir))
    return 0
