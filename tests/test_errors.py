"""Errors cross the process boundary: a worker returns them as values, pickled."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from pathlib import Path

import pytest

import tagger
from tagger.errors import FileError

OPTIONAL_IMPORTS = {"dask", "distributed"}  # the [cluster] extra's; every other optional import is lazy


def _tagger_exceptions() -> list[type[Exception]]:
    """Every exception class the package defines, in any module (imported here so none is missed)."""
    for module in pkgutil.walk_packages(tagger.__path__, "tagger."):
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as missing:
            if missing.name not in OPTIONAL_IMPORTS:
                raise
            # a room of an optional extra not installed here (e.g. tagger.cluster without [cluster]): its
            # exceptions live in tagger.errors, which is imported
    found: list[type[Exception]] = []
    todo: list[type[Exception]] = [Exception]
    while todo:
        for cls in todo.pop().__subclasses__():
            todo.append(cls)
            # A module's private exception (config's _Mismatch) is caught inside it and never crosses processes.
            if cls.__module__.startswith("tagger.") and not cls.__name__.startswith("_") and cls not in found:
                found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


EXCEPTIONS = _tagger_exceptions()
FILE_ERRORS = [c for c in EXCEPTIONS if issubclass(c, FileError)]
OTHER_ERRORS = [c for c in EXCEPTIONS if not issubclass(c, FileError)]


@pytest.mark.parametrize("cls", FILE_ERRORS, ids=lambda c: c.__name__)
def test_file_errors_survive_pickling_with_path_and_reason(cls: type[FileError]) -> None:
    error = cls(Path("/music/a.mp3"), "not an audio file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert (copy.path, copy.reason, str(copy)) == (Path("/music/a.mp3"), "not an audio file", str(error))


@pytest.mark.parametrize("cls", OTHER_ERRORS, ids=lambda c: c.__name__)
def test_other_errors_survive_pickling(cls: type[Exception]) -> None:
    copy = pickle.loads(pickle.dumps(cls("no model card at /x.json")))
    assert type(copy) is cls and str(copy) == "no model card at /x.json"


def test_every_error_class_is_covered() -> None:
    names = {c.__name__ for c in EXCEPTIONS}
    assert {"FileError", "DecodeError", "TagReadError", "TagWriteError", "UnsupportedFormatError"} <= names
    assert {"TaggerError", "ModelError", "ConfigError"} <= names
