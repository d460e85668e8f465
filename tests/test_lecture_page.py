"""docs/lecture.md is generated from docs/lecture.toml and results/, and cites only what exists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("lecture_page", ROOT / "tools" / "lecture_page.py")
assert spec is not None and spec.loader is not None
page = importlib.util.module_from_spec(spec)
sys.modules["lecture_page"] = page
spec.loader.exec_module(page)


def load() -> dict:
    return page.tomllib.loads(page.SPEC.read_text(encoding="utf-8"))


def test_every_cited_file_and_test_exists() -> None:
    assert page.missing(load()) == []


def test_the_committed_page_is_what_the_spec_generates() -> None:
    assert page.PAGE.read_text(encoding="utf-8") == page.render(load()), (
        "docs/lecture.md is stale: run python tools/lecture_page.py"
    )


def test_a_missing_result_or_test_is_named(tmp_path: Path) -> None:
    spec = load()
    section = spec["section"][0]
    section["results"] = [*section.get("results", []), "results/never-run.json"]
    section["tests"] = [*section["tests"], "tests/nn/test_cells.py::test_that_does_not_exist"]
    problems = page.missing(spec)
    assert "results: results/never-run.json" in problems
    assert "tests: tests/nn/test_cells.py::test_that_does_not_exist" in problems


def test_sections_follow_the_lecture_and_name_its_known_errors() -> None:
    sections = load()["section"]
    order = [s["lecture"] for s in sections]
    assert order == sorted(order, key=lambda x: (x.split(",")[0], x.split("§")[1]))
    notes = " ".join(s.get("note", "") for s in sections)
    assert "GRU slide repeats" in notes and "doubled minus sign" in notes and "n − 1" in notes
