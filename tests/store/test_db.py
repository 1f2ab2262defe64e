"""The one rule for which file a SQLite URL means: the database, its lock, the daemon's status file and the
learned vocabularies all follow the file SQLite really opens, however the URL spells it."""

from __future__ import annotations

from pathlib import Path

import pytest
from platformdirs import user_data_dir

from tagger.daemon import status_file_for
from tagger.store import Database
from tagger.store.db import sqlite_file
from tagger.vocabulary import vocabularies_dir


@pytest.mark.parametrize(
    ("name", "spelling"),
    [
        ("tagger.db", "sqlite:///{folder}/tagger.db"),
        ("tagger.db", "sqlite:///{folder}/tagger.db?timeout=5"),
        ("tagger.db", "sqlite+pysqlite:///{folder}/tagger.db"),
        ("my db.db", "sqlite:///{folder}/my%20db.db"),  # the engine decodes the URL: it opens "my db.db"
    ],
)
def test_the_files_beside_the_database_follow_the_file_sqlite_opens(tmp_path: Path, name: str, spelling: str) -> None:
    folder = tmp_path / "state"
    url = spelling.format(folder=folder)
    database = Database(url)
    with database.writer_lock():
        pass
    database.dispose()
    file = folder / name
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [name, f"{name}.lock"]
    assert sqlite_file(url) == file
    assert database.name == str(file)
    assert vocabularies_dir(url) == folder / "vocabularies"
    assert status_file_for(url) == folder / f"{name}.status.json"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql://tagger:secret@localhost/tagger", "not a url"]
)
def test_no_file_behind_an_in_memory_or_server_database(url: str) -> None:
    assert sqlite_file(url) is None
    assert vocabularies_dir(url) == Path(user_data_dir("genre-tagger")) / "vocabularies"
