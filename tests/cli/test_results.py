"""``elman results``: the README table built from results files."""

from __future__ import annotations

import json

import pytest

from elman import files
from elman.cli import main
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


def test_results_files_are_read_as_strict_json(tmp_path):
    (tmp_path / "nan.json").write_text('{"recipe": "n", "metrics": {"test": {"ppl": NaN}}}')
    with pytest.raises(ElmanError, match=r"nan\.json is not valid JSON \(NaN is not strict JSON"):
        results_table(tmp_path)
    (tmp_path / "nan.json").write_text("[1, 2]")
    with pytest.raises(ElmanError, match=r"nan\.json: expected a JSON object, found list"):
        results_table(tmp_path)


def test_null_numbers_show_as_a_dash(tmp_path):
    # what strict JSON writes for a NaN: shown as missing, never a traceback
    metrics = {"valid": {"ppl": None}, "test": {"bpc": None, "loss": 1.0}}
    write(tmp_path, "a", recipe="a", metrics=metrics, wall_time_s=None, cpu_time_s=None)
    write(tmp_path, "b", recipe="b", metrics={"valid": {"bpc": 1.5}, "test": {"accuracy": 0.5}})
    rows = results_table(tmp_path).splitlines()
    assert rows[2] == "| a |  | – | – | – |  | – |"
    assert "| 1.500 bpc | 50.00% |" in rows[3]


def test_the_readme_is_left_whole_when_the_table_cannot_be_built(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bad.json").write_text('{"metrics": Infinity}')
    code = main(["results", "--readme", str(readme), "--dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bad.json" in err
    assert readme.read_text() == f"intro\n{START}\nold table\n{END}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "results"]
    code = main(["results", "--readme", str(tmp_path / "missing.md")])
    assert code == 2 and "--readme" in capsys.readouterr().err


def test_a_readme_rewrite_is_atomic(tmp_path, monkeypatch):
    write(tmp_path / "results", "a", recipe="a", metrics={})
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\n")

    def killed(path, text):  # the write dies halfway, as a kill would
        with files.atomic_open(path) as f:
            f.write(text[:5])
            raise KeyboardInterrupt

    monkeypatch.setattr("elman.cli.results.write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        write_readme(readme, tmp_path / "results")
    assert readme.read_text() == f"intro\n{START}\nold table\n{END}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "results"]
