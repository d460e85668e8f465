"""``elman results [--readme README.md]``: the results table, built from ``results/*.json``.

Every number in the README's table comes from a results file written by a run of the committed
code (``elman train … --results results/NAME.json``, ``elman ngram eval … --json``); this command
only formats them, between the markers ``<!-- results:start -->`` and ``<!-- results:end -->``.
Results files are strict JSON (a missing number is null, shown as –; a NaN literal is refused).
The README is rewritten atomically: a run stopped halfway leaves it as it was.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from elman.cli.options import check_output
from elman.errors import ElmanError
from elman.files import write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results", help="print (or write into the README) the results table", description=__doc__
    )
    p.add_argument("--dir", default="results", help="folder of results JSON files")
    p.add_argument(
        "--readme",
        help="rewrite the table between the markers in this file (default: print the table)",
    )
    p.set_defaults(func=run)


def _number(split: dict[str, Any], key: str) -> float | None:
    value = split.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metric(split: Any) -> str:
    """The headline number of one split's metrics; – when it is missing or null."""
    if not isinstance(split, dict) or not split:
        return "–"
    if "bpc" in split:
        bpc, loss = _number(split, "bpc"), _number(split, "loss")
        if bpc is None:
            return "–"
        return f"{bpc:.3f} bpc" + (f" (loss {loss:.3f})" if loss is not None else "")
    formats = (("bleu", "BLEU {:.1f}", 1), ("mse", "MSE {:.4f}", 1), ("accuracy", "{:.2f}%", 100))
    for key, fmt, scale in (*formats, ("ppl", "{:.1f}", 1)):
        if key in split:
            value = _number(split, key)
            return "–" if value is None else fmt.format(scale * value)
    return "–"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not strict JSON; write null for a missing number")


def read_record(path: Path) -> dict[str, Any]:
    """One results file: a JSON object, strictly (no NaN or Infinity literals)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except OSError as err:
        raise ElmanError(f"results file {path}: cannot read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise ElmanError(f"results file {path} is not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise ElmanError(
            f"results file {path}: expected a JSON object, found {type(record).__name__}"
        )
    return record


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
        r = read_record(path)
        metrics = r["metrics"] if isinstance(r.get("metrics"), dict) else {}
        wall = _number(r, "wall_time_s")
        wall_s = f"{wall / 60:.1f} min" if wall is not None else "–"
        if str(r.get("task", "")).startswith("eval") and wall_s != "–":
            wall_s = "eval " + wall_s  # `elman eval --results`: scoring time, not training
        cpu = _number(r, "cpu_time_s")  # the process's CPU time: the wall time of idle cores
        if cpu is not None:
            wall_s += f" ({cpu / 60:.1f} CPU min)"
        command = f"`{r['command']}`" if r.get("command") else "–"
        sessions = r.get("sessions")
        resumes = len(sessions) - 1 if isinstance(sessions, list) else 0
        if resumes > 0:  # the run went on with `elman train --resume` (listed in the file)
            command += f", resumed {resumes}× (`sessions` in {path.name})"
        rows.append(
            f"| {r.get('recipe', path.stem)} | {r.get('aim', '')} | {_metric(metrics.get('valid'))}"
            f" | {_metric(metrics.get('test'))} | {wall_s} | {r.get('device', '')} | {command} |"
        )
    return "\n".join(rows)


def write_readme(readme: str | Path, folder: str | Path = "results") -> None:
    """Replace the table between the markers of ``readme``, atomically."""
    readme = Path(readme)
    try:
        text = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ElmanError(f"--readme {readme}: no such file; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ElmanError(f"--readme {readme}: cannot read ({reason or err})") from None
    if START not in text or END not in text:
        raise ElmanError(f"{readme} has no {START} … {END} markers to write the table between")
    check_output(readme, "--readme")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write_text(readme, f"{head}{START}\n{results_table(folder)}\n{END}{tail}")


def run(args: argparse.Namespace) -> int:
    if args.readme:
        write_readme(args.readme, args.dir)
    else:
        print(results_table(args.dir))
    return 0
