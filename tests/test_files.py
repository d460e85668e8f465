"""elman.files: atomic replacement, strict JSON, torn JSON lines, checked output paths."""

from __future__ import annotations

import json
import os

import pytest

from elman import files
from elman.errors import ElmanError


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.arpa"
    files.write_text(path, "old\n")
    with pytest.raises(RuntimeError), files.atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.arpa"]


def test_temporaries_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"torn")
    (tmp_path / "last.pt").write_bytes(b"good")
    assert [p.name for p in files.remove_temporaries(tmp_path)] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_json_is_strict(tmp_path):
    path = files.write_json(tmp_path / "r.json", {"ppl": float("nan"), "x": [float("inf"), 1.5]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"ppl": None, "x": [None, 1.5]}


def test_a_torn_last_json_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    files.append_jsonl(path, {"step": 1})
    files.append_jsonl(path, {"step": 2})
    with path.open("a") as f:
        f.write('{"step": 3, "lo')  # the process died mid-write
    assert files.read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ElmanError, match="line 2 is not JSON"):
        files.read_jsonl(path)


def test_unwritable_outputs_are_one_line_naming_the_path(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ElmanError, match="a-file is a file, not a folder"):
        files.check_writable(tmp_path / "a-file" / "results.json", "--results")
    with pytest.raises(ElmanError, match="it is a folder"):
        files.check_writable(tmp_path, "--results")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ElmanError, match="permission denied"):
            files.check_writable(ro / "r.json", "--results")
    files.check_writable(tmp_path / "new" / "r.json")  # creates the folder, writes nothing
    assert list((tmp_path / "new").iterdir()) == []


def test_a_replaced_file_keeps_its_permissions_and_a_new_one_follows_the_umask(tmp_path):
    old = tmp_path / "README.md"
    old.write_text("old\n")
    old.chmod(0o640)
    files.write_text(old, "new\n")
    assert old.stat().st_mode & 0o777 == 0o640
    new = files.write_text(tmp_path / "new.arpa", "x\n")
    assert new.stat().st_mode & 0o777 == 0o666 & ~files._UMASK  # not mkstemp's 0o600
