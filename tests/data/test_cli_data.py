import argparse
import hashlib
import io
import urllib.error
import urllib.request

import pytest

from elman.cli import data as cli_data
from elman.errors import ElmanError


def run(argv):
    parser = argparse.ArgumentParser()
    cli_data.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_list_reports_present_missing_corrupt(fake_table, capsys):
    root, _ = fake_table
    (root / "toy" / "test.txt").write_bytes(b"changed\n")
    (root / "toychar" / "input.txt").unlink()
    infos = {i.name: i for i in cli_data.list_datasets(counts=True)}
    assert infos["toy"].status == "corrupt"
    assert infos["toychar"].status == "missing"
    assert infos["toypar"].status == "present" and infos["toypar"].tokens == {}
    assert run(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "corrupt" in out and "missing" in out and "elman data download" in out


def test_list_counts_tokens(fake_table):
    infos = {i.name: i for i in cli_data.list_datasets(counts=True)}
    assert infos["toy"].tokens == {"train": 7, "valid": 3, "test": 4}


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def serve(monkeypatch, files: dict[str, bytes]):
    def urlopen(url, timeout=None):
        if url not in files:
            raise urllib.error.URLError("Name or service not known")
        return FakeResponse(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_fetches_verifies_and_keeps_good_files(fake_table, monkeypatch, tmp_path):
    _, table = fake_table
    spec = table["toy"]
    good = {f.url: (fake_table[0] / f.relpath).read_bytes() for f in spec.files.values()}
    new_root = tmp_path / "fresh"
    serve(monkeypatch, good)
    paths = cli_data.download("toy", root=new_root, quiet=True)
    assert [p.read_bytes() for p in paths] == list(good.values())
    assert not list(new_root.rglob("*.part"))
    serve(monkeypatch, {})  # nothing reachable: present files are not fetched again
    cli_data.download("toy", root=new_root, quiet=True)


def test_download_without_network_is_one_line(fake_table, monkeypatch, tmp_path):
    serve(monkeypatch, {})
    with pytest.raises(ElmanError) as err:
        cli_data.download("toy", root=tmp_path / "r", quiet=True)
    msg = str(err.value)
    assert "could not download https://example.org/toy/train.txt" in msg and "\n" not in msg
    assert not list((tmp_path / "r").rglob("*.part"))


def test_download_rejects_a_changed_upstream_file(fake_table, monkeypatch, tmp_path):
    _, table = fake_table
    f = table["toy"].files["train"]
    serve(monkeypatch, {f.url: b"something else\n"})
    with pytest.raises(ElmanError, match=f"expected sha256 {f.sha256}"):
        cli_data.download("toy", root=tmp_path / "r", quiet=True)
    assert not (tmp_path / "r" / f.relpath).exists()
    assert hashlib.sha256(b"something else\n").hexdigest() != f.sha256


def test_download_unknown_name(fake_table):
    with pytest.raises(ElmanError, match="known: toy, toychar, toypar"):
        cli_data.download("nope")


def test_list_names_the_task_as_the_recipes_do(tmp_path, capsys):
    infos = {i.name: i for i in cli_data.list_datasets(tmp_path)}  # nothing present there
    assert {i.task for i in infos.values()} == {"lm", "translation", "tagger"}
    assert infos["ud-en-lines"].task == infos["ud-en-atis"].task == "tagger"
    assert run(["data", "list", "--root", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["ud-en-atis", "tagger", "word", "missing"] == rows[-2][:4]
