"""Walks: the catch-up at start and the periodic reconcile find what no event reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tagger.daemon.status import read_status, status_file_for
from tagger.model import ModelCard
from tagger.record import Library
from tagger.store import Database, TrackStatus
from tests.daemon.harness import make, running, tagged, track_rows, wait_for


def test_changes_while_stopped_are_caught_up_at_the_next_start(
    database: Database, tiny_card: ModelCard, music: Path
) -> None:
    make(music / "first.wav", 0)
    make(music / "second.wav", 1)
    with running(Library(database, tiny_card), [music]) as daemon:
        assert wait_for(lambda: len(track_rows(database)) == 2 and daemon.is_idle())
    status = read_status(status_file_for(database.url))
    assert status is not None and status["state"] == "stopped" and not status["running"]
    assert status["counts"]["tagged"] == 2 and status["errors"] == 0
    shown = CliRunner().invoke(app, ["status", "--db", str(database.url.removeprefix("sqlite:///"))])
    assert shown.exit_code == 3 and "stopped" in shown.output and "2 tagged" in shown.output, shown.output

    make(music / "added.flac", 2)  # while stopped
    (music / "second.wav").unlink()
    with running(Library(Database(database.url), tiny_card), [music]) as daemon:
        assert daemon.caught_up.is_set()
        rows = track_rows(database)
        assert tagged(database, music / "added.flac")
        assert rows[str(music / "second.wav")][0] == TrackStatus.GONE
        assert rows[str(music / "first.wav")] == (TrackStatus.DONE, 1)  # unchanged: not classified again


def test_periodic_reconcile_finds_what_the_observer_missed(
    library: Library, music: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 3600.0)  # no re-arming of the stopped observer
    make(music / "a.wav", 0)
    with running(library, [music], reconcile_hours=1 / 3600) as daemon:
        assert wait_for(lambda: tagged(library.db, music / "a.wav"))
        for observer in daemon.watched.observers.values():  # events dropped, as the OS may do
            observer.stop()
            observer.join()
        (music / "a.wav").unlink()
        make(music / "b.flac", 1)
        assert wait_for(lambda: tagged(library.db, music / "b.flac"), timeout=20)
        assert wait_for(lambda: track_rows(library.db)[str(music / "a.wav")][0] == TrackStatus.GONE, timeout=20)
