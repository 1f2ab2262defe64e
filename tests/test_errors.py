"""Errors cross the process boundary: a worker returns them as values, pickled."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import pytest

from tagger import errors
from tagger.config import ConfigError

FILE_ERRORS = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.FileError)]
OTHER_ERRORS = [
    c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception) and c not in FILE_ERRORS
]


@pytest.mark.parametrize("cls", FILE_ERRORS, ids=lambda c: c.__name__)
def test_file_errors_survive_pickling_with_path_and_reason(cls: type[errors.FileError]) -> None:
    error = cls(Path("/music/a.mp3"), "not an audio file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert (copy.path, copy.reason, str(copy)) == (Path("/music/a.mp3"), "not an audio file", str(error))


@pytest.mark.parametrize("cls", [*OTHER_ERRORS, ConfigError], ids=lambda c: c.__name__)
def test_other_errors_survive_pickling(cls: type[Exception]) -> None:
    copy = pickle.loads(pickle.dumps(cls("no model card at /x.json")))
    assert type(copy) is cls and str(copy) == "no model card at /x.json"


def test_every_error_class_is_covered() -> None:
    assert {"FileError", "DecodeError", "TagReadError", "TagWriteError", "UnsupportedFormatError"} <= {
        c.__name__ for c in FILE_ERRORS
    }
    assert {"TaggerError", "ModelError"} <= {c.__name__ for c in OTHER_ERRORS}
