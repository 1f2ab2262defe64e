from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select

from tagger.store import Database, Result, Track
from tagger.store.db import migrations_dir


def test_migration_creates_the_schema_in_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tagger.db"
    Database(path)
    connection = sqlite3.connect(path)
    tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    assert {"tracks", "results", "tag_writes", "alembic_version"} <= tables
    scripts = Config()
    scripts.set_main_option("script_location", str(migrations_dir()))
    head = ScriptDirectory.from_config(scripts).get_current_head()
    assert connection.execute("select version_num from alembic_version").fetchone() == (head,)
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


def test_a_0001_database_is_upgraded_and_keeps_its_results(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(config, "0001")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "insert into tracks (id, path, status, first_seen, updated_at) "
            "values (1, '/m/a.flac', 'done', '2026-01-01', '2026-01-01')"
        )
        connection.execute(
            "insert into results (track_id, model_id, vocabulary, genres, chosen, confident, windows, created_at) "
            """values (1, 'tiny@1', 'synthetic', '[]', '["drone"]', 1, '{}', '2026-01-01')"""
        )
    database = Database(path)
    with database.session() as session:
        result = session.scalar(select(Result))
        assert result is not None and result.chosen == ["drone"] and result.decided_with is None
