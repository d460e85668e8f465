"""``elman results``: the README table built from results files."""

from __future__ import annotations

import json

import pytest

from elman.cli.results import END, START, results_table, write_readme
from elman.errors import ElmanError


def write(folder, name, **record):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_one_row_per_file_with_wall_and_cpu_time(tmp_path):
    write(
        tmp_path,
        "b",
        recipe="b",
        metrics={"valid": {"ppl": 120.0}, "test": {"ppl": 115.5}},
        wall_time_s=600,
        cpu_time_s=300,
        command="elman train b.toml",
    )
    write(tmp_path, "a", recipe="a", metrics={}, wall_time_s=60)
    write(tmp_path, "c", recipe="c", task="eval --mix", metrics={}, wall_time_s=120)
    lines = results_table(tmp_path).splitlines()
    assert len(lines) == 5 and lines[2].startswith("| a |") and lines[3].startswith("| b |")
    assert "| eval 2.0 min |" in lines[4]  # scoring time of `elman eval --results`
    assert "10.0 min (5.0 CPU min)" in lines[3] and "`elman train b.toml`" in lines[3]
    assert "1.0 min |" in lines[2] and "CPU" not in lines[2]


def test_a_resumed_run_shows_its_first_command_and_the_resumes(tmp_path):
    sessions = [{"command": "elman train d.toml"}, {"command": "elman train --resume runs/d"}]
    write(tmp_path, "d", recipe="d", metrics={}, command="elman train d.toml", sessions=sessions)
    row = results_table(tmp_path).splitlines()[2]
    assert row.endswith("| `elman train d.toml`, resumed 1× (`sessions` in d.json) |")


def test_readme_table_is_replaced_between_the_markers(tmp_path):
    write(tmp_path / "results", "a", recipe="a", metrics={})
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nmore\n")
    write_readme(readme, tmp_path / "results")
    text = readme.read_text()
    assert "old table" not in text and "| a |" in text
    assert text.startswith("intro\n") and text.endswith(f"{END}\nmore\n")


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ElmanError, match="no results files"):
        results_table(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ElmanError, match=r"x\.json is not valid JSON"):
        results_table(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ElmanError, match="markers"):
        write_readme(readme, tmp_path)
