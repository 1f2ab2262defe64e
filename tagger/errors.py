"""Exceptions that say what went wrong with which file."""

from __future__ import annotations

from pathlib import Path


class TaggerError(Exception):
    """Base of every error this package raises on purpose."""


class FileError(TaggerError):
    """Something about one file; ``reason`` is short enough for a table cell."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[FileError], tuple[Path, str]]:
        # Workers send these back as values: the default pickling re-calls ``__init__`` with the message only.
        return type(self), (self.path, self.reason)


class DecodeError(FileError):
    """No decoder could read the file as audio."""


class TagReadError(FileError):
    """The file's tags could not be read."""


class TagWriteError(FileError):
    """The genre could not be written; the file is unchanged."""


class UnsupportedFormatError(FileError):
    """The file is not in a format whose tags this tool writes."""


class ModelError(TaggerError):
    """A model file or model card is missing or inconsistent."""


class DatabaseError(TaggerError):
    """The database could not be opened, migrated, read or written: one line naming it (password masked)."""


class ClusterError(TaggerError):
    """A cluster scan cannot start (a bad address, no scheduler there, no ``distributed``, a SQLite database) or
    go on (the cluster has had no workers for too long)."""
