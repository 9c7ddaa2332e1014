"""Modules import downward only: no import cycle among the project's own modules.

Every .py file under mind_core/, backends/ and tui/ is parsed with `ast` (nothing is
imported), and every import statement in it counts, wherever it is: at the top, inside a
function (a lazy import is still a dependency) or under `if TYPE_CHECKING:`. Imports by
string (importlib, `python -m mind_core.cli` in a child process) are not statements and do
not count.

The graph's nodes are modules; `pkg/__init__.py` is the module `pkg`. An import depends on:

- `import a.b.c`: the module a.b.c (not a or a.b, whose __init__ Python also runs: counting
  them would make every submodule of a package that re-exports its submodules a cycle);
- `from a.b import c`: the module a.b.c when c is a submodule (`from mind_core import masks`
  reaches a sibling, not mind_core/__init__.py), else a.b, whose name c is
  (`from mind_core.data import load_dataset` depends on mind_core/data/__init__.py);
- relative imports the same, resolved against the importing module's package.

A dotted name that is not one of the project's modules (one gone from the tree, say) counts
as its longest prefix that is one; imports of anything else (numpy, torch) are left out. A cycle is a strongly connected set of two or more
modules (a knot); the test prints one closed path through each, and the knot's other modules
when it has more.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mind_core", "backends", "tui")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for top in PACKAGES
            for path in sorted((ROOT / top).rglob("*.py"))}


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _base_of(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    # A package's own name is the base of its level-1 imports; a module's is its package's.
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules that module `name` (at `path`) imports, anywhere in it."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, name, is_package)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        found.update(filter(None, (_known_prefix(target, modules) for target in targets)))
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def knots(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of two or more modules, by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One closed path (first module repeated at the end) through each knot."""
    return [closed_path(graph, knot) for knot in knots(graph)]


def closed_path(graph: dict[str, set[str]], knot: set[str]) -> list[str]:
    """The shortest path from the knot's first module back to itself (breadth first)."""
    start = min(knot)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & knot):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {sorted(knot)}")  # Tarjan said there was


def test_the_project_imports_have_no_cycle():
    graph = import_graph()
    lines = []
    for knot in knots(graph):
        path = closed_path(graph, knot)
        others = sorted(knot - set(path))
        lines.append("  " + " -> ".join(path) + (f" (and in the same knot: {', '.join(others)})"
                                                  if others else ""))
    assert not lines, "import cycles (each module imports the next):\n" + "\n".join(lines)


def test_the_graph_sees_lazy_relative_and_from_imports(tmp_path):
    """The rules of the docstring: a lazy import inside a function is seen, `from pkg import
    sub` reaches the submodule and `from pkg import name` the package, relative imports
    resolve against the importer's package, and a cycle shows as a closed path."""
    graph = import_graph()
    assert "mind_core.sweep.command" in graph["mind_core.cli"]  # lazily, inside _parser
    assert "mind_core.api" in graph["mind_core"]  # inside __getattr__
    modules = dict.fromkeys(["pkg", "pkg.top", "pkg.sub", "pkg.sub.deep", "pkg.sub.leaf"])
    top = tmp_path / "top.py"
    top.write_text("import numpy\nfrom pkg import sub\nimport pkg.sub.deep\n")
    assert imports_of("pkg.top", top, modules) == {"pkg.sub", "pkg.sub.deep"}
    top.write_text("from pkg import sub, name\n")
    assert imports_of("pkg.top", top, modules) == {"pkg.sub", "pkg"}
    init = tmp_path / "__init__.py"
    init.write_text("from . import sub\nfrom .sub import name\n")
    assert imports_of("pkg", init, modules) == {"pkg.sub"}
    leaf = tmp_path / "leaf.py"
    leaf.write_text("def f():\n    from .. import top\n    from .deep import thing\n")
    assert imports_of("pkg.sub.leaf", leaf, modules) == {"pkg.top", "pkg.sub.deep"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
