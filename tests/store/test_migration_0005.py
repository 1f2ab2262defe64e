"""Migration 0005_moods on every engine: a database of the previous release keeps its rows and gains the columns."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track
from tagger.store.db import migrations_dir
from tagger.store.models import Base


def _upgrade_to(db_url: str, revision: str) -> None:
    """An empty database migrated only up to ``revision`` (as an older release left it)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(db_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_a_0004_database_is_upgraded_and_keeps_its_rows(db_url: str) -> None:
    _upgrade_to(db_url, "0004_file_genres")
    engine = create_engine(db_url)
    with engine.begin() as connection:
        assert "role" not in {c["name"] for c in inspect(connection).get_columns("tag_writes")}
        connection.execute(
            text(
                "insert into tracks (id, path, status, user_genres, file_genres, first_seen, updated_at) values "
                """(1, '/m/a.flac', 'done', '["Jazz"]', '["Jazz"]', current_timestamp, current_timestamp)"""
            )
        )
        connection.execute(
            text(
                "insert into results (id, track_id, model_id, vocabulary, genres, chosen, confident, windows, "
                """created_at) values (1, 1, 'tiny@1', 'synthetic', '[]', '["drone"]', :yes, '{}', current_timestamp)"""
            ),
            {"yes": True},  # PostgreSQL's boolean takes no 1
        )
        connection.execute(
            text(
                "insert into tag_writes (track_id, result_id, field, previous, new, status, written_at) values "
                """(1, 1, 'GENRE', '[]', '["drone"]', 'applied', current_timestamp)"""
            )
        )
    engine.dispose()
    database = Database(db_url)  # upgraded to head on open
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None and track.user_genres == ["Jazz"] and track.file_genres == ["Jazz"]
        assert track.user_moods is None and track.file_moods is None
        result = session.scalar(select(Result))
        assert result is not None and result.chosen == ["drone"] and result.moods is None
        write = session.scalar(select(TagWrite))
        assert write is not None and write.role == "genre" and write.field == "GENRE"  # every old write was a genre's
        mood = TagWrite(track=track, result=result, role="mood", field="MOOD", previous=[], new=["Happy"])
        mood.status = TagWriteStatus.APPLIED
        session.add(mood)
        track.user_moods, track.file_moods = ["Calm"], ["Happy"]
        result.moods = decision = {"vocabulary": "moods", "scores": {"Q1": 0.7}, "chosen": ["Happy"]}
    with database.session() as session:
        roles = session.execute(select(TagWrite.role, TagWrite.new).order_by(TagWrite.id)).all()
        assert [tuple(row) for row in roles] == [("genre", ["drone"]), ("mood", ["Happy"])]
        assert session.scalar(select(Track.file_moods)) == ["Happy"]
        assert session.scalar(select(Result.moods)) == decision
    database.dispose()


def test_the_migrated_schema_has_the_models_columns(db_url: str) -> None:
    """What the migrations create is what tagger.store.models declares for the columns 0005 adds."""
    Database(db_url).dispose()
    engine = create_engine(db_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        columns = {table: {c["name"]: c for c in inspect(connection).get_columns(table)} for table in
                   ("results", "tracks", "tag_writes")}  # fmt: skip
    engine.dispose()
    new = {("results", "moods"), ("tracks", "user_moods"), ("tracks", "file_moods"), ("tag_writes", "role")}
    about_new = [d for d in diffs if any(column in repr(d) for _, column in new)]
    assert about_new == []
    assert all(name in columns[table] for table, name in new)
    assert columns["tag_writes"]["role"]["nullable"] is False
    assert columns["results"]["moods"]["nullable"] and columns["tracks"]["user_moods"]["nullable"]
