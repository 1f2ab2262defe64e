from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import select

from tagger.store import Database, Track


def test_migration_creates_the_schema_in_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tagger.db"
    Database(path)
    connection = sqlite3.connect(path)
    tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    assert {"tracks", "results", "tag_writes", "alembic_version"} <= tables
    assert connection.execute("select version_num from alembic_version").fetchone() == ("0001",)
    assert connection.execute("pragma journal_mode").fetchone() == ("wal",)
    assert connection.execute("pragma integrity_check").fetchone() == ("ok",)


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "tagger.db"
    db = Database(path)
    with db.session() as session:
        session.add(Track(path="/music/a.flac", status="done"))
    again = Database(path)
    with again.session() as session:
        assert session.scalar(select(Track.path)) == "/music/a.flac"


def test_non_utf8_file_names_round_trip(database: Database) -> None:
    name = b"/music/caf\xe9.flac".decode("utf-8", "surrogateescape")  # Latin-1 name on a UTF-8 system
    with database.session() as session:
        session.add(Track(path=name, status="done"))
    with database.session() as session:
        assert session.scalar(select(Track.path)) == name
        assert session.scalar(select(Track).where(Track.path == name)) is not None


def test_sqlalchemy_url_is_accepted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'url.db'}")
    assert (tmp_path / "url.db").exists()
    assert db.url.startswith("sqlite:///")
