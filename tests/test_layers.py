"""The package's layering (docs/architecture.md), checked by tools/check_layers.py over ast."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
assert spec is not None and spec.loader is not None
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)


def test_no_module_imports_from_a_higher_layer():
    assert check_layers.upward(check_layers.graph()) == []


def test_no_import_cycle():
    assert check_layers.cycles(check_layers.graph()) == []


def test_every_package_has_a_layer():
    packages = {p.name for p in (ROOT / "src" / "elman").iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(check_layers.LAYERS)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_checker_finds_an_upward_import_and_a_cycle(tmp_path):
    root = write(
        tmp_path / "elman",
        {
            "__init__.py": "",
            "data/__init__.py": "",
            "data/a.py": "def f():\n    from elman.train import loop  # lazy, still counted\n",
            "data/b.py": "from elman.data import c\n",
            "data/c.py": "import elman.data.b\n",
            "train/__init__.py": "",
            "train/loop.py": "from elman.data.a import f\n",
        },
    )
    edges = check_layers.graph(root)
    assert check_layers.upward(edges) == [
        "elman.data.a (data) imports elman.train.loop (train), line 2"
    ]
    assert sorted(check_layers.cycles(edges)) == [
        ["elman.data.a", "elman.train.loop"],
        ["elman.data.b", "elman.data.c"],
    ]
