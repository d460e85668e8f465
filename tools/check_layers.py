"""Check elman's layering: no module imports from a layer above its own, and no import cycle.

    python tools/check_layers.py            # prints each violation; exit status 1 if any

The layers, bottom to top (docs/architecture.md): the base modules (``errors``, ``config``,
``files``, ``provenance``, ``progress``) -> ``data`` -> ``nn`` -> ``models`` -> ``train`` ->
``inference`` -> ``tasks`` -> ``lab`` -> ``export`` -> ``serve`` -> ``cli`` (and the package's own
``__init__``/``__main__``, on top).
Every import counts, also one inside a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "elman"
LAYERS = [
    "base",
    "data",
    "nn",
    "models",
    "train",
    "inference",
    "tasks",
    "lab",
    "export",
    "serve",
    "cli",
    "facade",
]
BASE = {"errors", "config", "provenance", "files", "progress"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["elman", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer of ``elman.X…``: X's own, or ``base`` for the base modules (``BASE``)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "facade"
    return "base" if parts[1] in BASE else parts[1]


def imports(path: Path, modules: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported elman module) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("elman"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("elman"):
                continue
            for alias in node.names:  # `from elman.tasks import lm` imports a module
                sub = f"{node.module}.{alias.name}"
                yield node.lineno, sub if sub in modules else node.module


def graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """module -> {imported module: line}, over every module of the package."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    return {
        name: {target: line for line, target in imports(path, modules) if target != name}
        for name, path in files.items()
    }


def upward(edges: dict[str, dict[str, int]]) -> list[str]:
    """Imports from a higher layer, as ``a (layer) imports b (layer) at line N``."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for source, targets in sorted(edges.items()):
        for target, line in sorted(targets.items()):
            if rank[layer(target)] > rank[layer(source)]:
                out.append(
                    f"{source} ({layer(source)}) imports {target} ({layer(target)}), line {line}"
                )
    return out


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    edges = graph()
    problems = upward(edges) + [" -> ".join(c) + " (cycle)" for c in cycles(edges)]
    for line in problems:
        print(line)
    print(f"{len(edges)} modules, {len(problems)} layering problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
