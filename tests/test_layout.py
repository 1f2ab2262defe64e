"""The package's shape: no import cycles between tagger's modules, and rooms small enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TAGGER = Path(__file__).resolve().parents[1] / "tagger"

# Cycles present before the re-layout (issue 15), to be removed as they are broken; any other cycle fails.
KNOWN_IMPORT_CYCLES: set[frozenset[str]] = {
    # vocabulary -> learned (function-local) -> learn -> library -> vocabulary: applying a vocabulary imports
    # the fitting code; the record re-layout ends it.
    frozenset({"tagger.learn", "tagger.learned", "tagger.library", "tagger.vocabulary"}),
    # tags/base.py imports open_tags from its own package inside a function (the package imports base).
    frozenset(
        {
            "tagger.tags",
            "tagger.tags.asf",
            "tagger.tags.base",
            "tagger.tags.id3",
            "tagger.tags.mp4",
            "tagger.tags.vorbis",
        }
    ),
}


def module_files(package: Path = TAGGER) -> dict[str, Path]:
    """``tagger.x.y`` -> its file, for every module of the package."""
    found = {}
    for file in sorted(package.rglob("*.py")):
        parts = list(file.relative_to(package.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def imported(tree: ast.AST) -> Iterator[str]:
    """Every module an ``import`` anywhere in ``tree`` names, function-local ones too (they run as well), but
    not those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)  # a submodule imported by name
        yield from imported(node)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {
        name: {target for target in imported(ast.parse(file.read_text())) if target in modules} - {name}
        for name, file in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan), each a set of modules in a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.add(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_cycle_finder_sees_a_cycle_through_a_function_local_import() -> None:
    source = "import tagger.b\n\ndef f():\n    from tagger.c import thing\n"
    graph = {"tagger.a": set(imported(ast.parse(source))), "tagger.b": set(), "tagger.c": {"tagger.a"}}
    graph = {name: targets & set(graph) for name, targets in graph.items()}
    assert cycles(graph) == {frozenset({"tagger.a", "tagger.c"})}
    assert cycles({"tagger.a": {"tagger.b"}, "tagger.b": set()}) == set()


def test_no_new_import_cycle_in_tagger() -> None:
    graph = import_graph()
    assert {"tagger.daemon", "tagger.daemon.events", "tagger.systemd", "tagger.store.queries"} <= set(graph)
    new = cycles(graph) - KNOWN_IMPORT_CYCLES
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(cycle)) for cycle in new)


def test_the_daemon_rooms_are_small() -> None:
    rooms = [*sorted((TAGGER / "daemon").glob("*.py")), TAGGER / "systemd.py"]
    sizes = {room.relative_to(TAGGER).as_posix(): len(room.read_text().splitlines()) for room in rooms}
    assert len(sizes) >= 7 and all(lines <= 400 for lines in sizes.values()), sizes
