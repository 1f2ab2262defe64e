"""The trainer's place in the package: the runtime never imports it, and TensorFlow stays inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import tagger

TAGGER = Path(tagger.__file__).parent
TRAIN = TAGGER / "train"
TENSORFLOW = ("tensorflow", "keras")


def imported(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (at any depth: function-local ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def runtime_modules() -> list[Path]:
    return [p for p in sorted(TAGGER.rglob("*.py")) if TRAIN not in p.parents]


def test_the_runtime_never_imports_the_trainer() -> None:
    offenders = {
        str(path.relative_to(TAGGER)): sorted(
            n for n in imported(path) if n == "tagger.train" or n.startswith("tagger.train.")
        )
        for path in runtime_modules()
    }
    assert runtime_modules() and {k: v for k, v in offenders.items() if v} == {}


def test_tensorflow_is_imported_only_inside_the_trainer() -> None:
    offenders = {
        str(path.relative_to(TAGGER)): sorted(n for n in imported(path) if n.split(".")[0] in TENSORFLOW)
        for path in runtime_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    inside = set().union(*(imported(p) for p in TRAIN.rglob("*.py")))
    assert any(n.split(".")[0] in TENSORFLOW for n in inside)  # the check looks at real imports


def test_the_check_sees_a_function_local_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tagger.train.convert import write\n    import tensorflow as tf\n")
    assert {"tagger.train.convert", "tensorflow"} <= imported(module)


DEFERRED = ("tensorflow", "keras", "matplotlib")  # what a function may import: TensorFlow, and pyplot's backend


def local_imports(path: Path) -> set[str]:
    """Modules imported inside a function of ``path`` (first name only)."""
    names: set[str] = set()
    for function in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
    return names


def test_the_trainer_defers_only_tensorflow() -> None:
    offenders = {
        str(path.relative_to(TAGGER)): sorted(local_imports(path) - set(DEFERRED))
        for path in sorted(TRAIN.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_trainer_module_is_over_400_lines() -> None:
    lengths = {str(p.relative_to(TAGGER)): len(p.read_text().splitlines()) for p in TRAIN.rglob("*.py")}
    assert lengths and {k: n for k, n in lengths.items() if n > 400} == {}
