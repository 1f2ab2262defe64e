"""The record step (tagger.record): a result and a pending write, then the tag write, then applied; and the
recovery of a write a crash interrupted. On real files and real databases of every engine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tagger.model import ModelCard
from tagger.record import Library
from tagger.store import Database, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.store.test_db import python_process
from tests.test_scan import run_scan


@pytest.fixture
def database(any_database: Database) -> Database:
    """The record step on every engine."""
    return any_database


def test_crash_between_record_and_file_write_is_finished_next_run(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    path = make_track(tmp_path / "music" / "a.ogg", seconds=3.0)
    run_scan(database, tiny_card, tmp_path / "music")
    written = open_tags(path).read_genres()
    # Simulate a crash after the pending record, before the file write: the write is pending, file untouched.
    open_tags(path).write_genres([])
    with database.session() as session:
        write = session.scalar(select(TagWrite))
        assert write is not None
        write.status = TagWriteStatus.PENDING
        write.track.status = TrackStatus.PENDING
    library = Library(database, tiny_card)
    assert library.recover() == 1
    summary = run_scan(database, tiny_card, tmp_path / "music")
    assert summary.counts[Outcome.TAGGED] == 1
    assert open_tags(path).read_genres() == written


def test_a_track_recorded_by_another_process_meanwhile_is_not_a_crash(db_url: str, tmp_path: Path) -> None:
    """Both record the same new file: the second finds the first's row (was: UniqueViolation on tracks_path_key)."""
    database = Database(db_url)
    path = tmp_path / "x.flac"
    code = """if True:
        import sys
        from pathlib import Path
        from tagger.record import Library
        from tagger.model import load_card
        from tagger.store import Database
        library = Library(Database(sys.argv[1]), load_card(sys.argv[3]))
        print("ready", flush=True)
        print(library.record_failure(Path(sys.argv[2]), Path(sys.argv[2]).parent, "second", None).outcome)"""
    with database.session() as session:
        Library._track(session, path, tmp_path)
        session.flush()  # inserted, not committed: the other process's insert waits for this transaction
        other = python_process(code, db_url, str(path), str(TINY_CARD))
        assert other.stdout is not None and other.stdout.readline() == "ready\n"
        time.sleep(1.5)
    stdout, stderr = other.communicate(timeout=60)
    assert other.returncode == 0 and stdout == "failed\n", stderr[-2000:]
    with database.session() as session:
        assert session.execute(select(Track.path, Track.error)).all() == [(str(path), "second")]
    database.dispose()
