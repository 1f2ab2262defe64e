"""The package's layout: no module of ``tagger`` imports itself back through others.

The graph is built from the source (ast), not by importing: every ``import`` and ``from ... import``,
absolute or relative, at module level or inside a function (a function-local import closes a cycle
just the same, only later). Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tagger

PACKAGE = Path(tagger.__file__).resolve().parent


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """``tagger.x.y`` -> its file, for every module of the package."""
    names: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except what is inside ``if TYPE_CHECKING:`` (type checkers only)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` (defined in ``path``) imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from tagger.store import db` imports the module tagger.store.db; `from tagger.store import Track`
            # imports tagger.store.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            parts = target.split(".")
            # Importing a.b.c runs the packages a and a.b first (those the importer is not itself inside).
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    found.add(candidate)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(package)
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        # Iterative depth-first search: (module, its remaining neighbours).
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, rest = stack[-1]
            if not rest:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            nxt = rest.pop(0)
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                stack.append((nxt, sorted(graph.get(nxt, ()))))
                path.append(nxt)
                on_path.add(nxt)
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "tagger.scan" in graph and "tagger.store.db" in graph["tagger.store"]  # the graph is the package's
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_check_finds_a_cycle_through_a_function_local_relative_import(tmp_path: Path) -> None:
    """The checker itself: a cycle closed only by a function-local, relative import is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import a\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (package / "sub" / "b.py").write_text("def later():\n    from ..c import x\n")  # c -> a -> b -> c
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (package / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    assert find_cycle(import_graph(package)) is None  # for type checkers only: never imported
    (package / "sub" / "b.py").write_text("import os\n")
    assert find_cycle(import_graph(package)) is None


MAX_LINES = 400
"""Issue 15: a room small enough to read whole. The trainer (tagger/train) has its own check."""

OVERSIZED: dict[str, str] = {}
"""Modules allowed over :data:`MAX_LINES`, each with why; an entry goes when its module is small again."""


def test_every_module_of_the_runtime_is_at_most_400_lines() -> None:
    train = PACKAGE / "train"
    rooms = [path for path in sorted(PACKAGE.rglob("*.py")) if train not in path.parents]
    sizes = {room.relative_to(PACKAGE).as_posix(): len(room.read_text().splitlines()) for room in rooms}
    assert "tags/base.py" in sizes and "scan.py" in sizes and not any(name.startswith("train/") for name in sizes)
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in OVERSIZED}
    assert over == {}, f"over {MAX_LINES} lines (split them, or say why in OVERSIZED): {over}"
    stale = {name: sizes.get(name) for name in OVERSIZED if sizes.get(name, 0) <= MAX_LINES}
    assert stale == {}, f"no longer over {MAX_LINES} lines (or gone): drop from OVERSIZED: {stale}"
