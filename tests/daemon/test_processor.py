"""The processor: moves and deletions without re-classifying, reloads, idle workers released."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tagger.config import Settings, WatchSettings
from tagger.policy import Policy
from tagger.record import Library
from tagger.store import TrackStatus
from tagger.tags import open_tags
from tests.daemon.harness import QUIET, make, result_count, running, tagged, track_rows, wait_for


@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")  # watchdog's own note on a re-watched folder
def test_moves_update_the_path_without_reclassifying(library: Library, music: Path, staging: Path) -> None:
    (music / "album").mkdir()
    make(music / "a.wav", 0)
    make(music / "album" / "b.flac", 1)
    make(music / "c.wav", 2)
    with running(library, [music]) as daemon:  # the catch-up tags all three
        assert wait_for(lambda: all(tagged(library.db, p) for p in music.rglob("*.*")))
        assert daemon.wait_idle(10, settle=2 * QUIET)
        before = result_count(library.db)
        assert before == 3

        (music / "a.wav").rename(music / "renamed.wav")  # rename
        (music / "later").mkdir()
        (music / "album").rename(music / "later" / "album2")  # a folder move
        shutil.move(music / "c.wav", staging / "c.wav")  # out of the tree (looks like a deletion)...
        assert wait_for(lambda: track_rows(library.db).get(str(music / "c.wav"), ("",))[0] == TrackStatus.GONE)
        shutil.move(staging / "c.wav", music / "back.wav")  # ...and back in: found by fingerprint

        expected = {
            str(music / "renamed.wav"): (TrackStatus.DONE, 1),
            str(music / "later" / "album2" / "b.flac"): (TrackStatus.DONE, 1),
            str(music / "back.wav"): (TrackStatus.DONE, 1),
        }
        assert wait_for(lambda: track_rows(library.db) == expected), track_rows(library.db)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    assert track_rows(library.db) == expected
    assert result_count(library.db) == before
    assert daemon.counts["moved"] >= 3


def test_deleted_tracks_are_marked_gone(library: Library, music: Path) -> None:
    make(music / "keep.wav", 0)
    make(music / "delete.wav", 1)
    make(music / "folder" / "x.wav", 2)
    make(music / "folder" / "deep" / "y.flac", 3)
    with running(library, [music]) as daemon:
        assert wait_for(lambda: len(track_rows(library.db)) == 4 and daemon.is_idle())
        (music / "delete.wav").unlink()
        shutil.rmtree(music / "folder")
        gone = {str(music / "delete.wav"), str(music / "folder" / "x.wav"), str(music / "folder" / "deep" / "y.flac")}
        assert wait_for(lambda: {p for p, (s, _) in track_rows(library.db).items() if s == TrackStatus.GONE} == gone)
    assert track_rows(library.db)[str(music / "keep.wav")] == (TrackStatus.DONE, 1)


def test_reload_changes_settings_and_keeps_the_queue(library: Library, music: Path, staging: Path) -> None:
    settings = Settings(policy=Policy.OVERWRITE, min_confidence=0.1, watch=WatchSettings(quiet_seconds=QUIET))
    with running(library, [music], reload=lambda: settings) as daemon:
        shutil.copy(make(staging / "q.wav", 1), music / "q.wav")
        assert wait_for(lambda: daemon.queue_length == 1, timeout=5)
        daemon.request_reload()
        assert wait_for(lambda: daemon.library.options.policy is Policy.OVERWRITE, timeout=5)
        assert wait_for(lambda: tagged(library.db, music / "q.wav"))
        assert daemon.library.options.min_confidence == 0.1


def test_reload_with_a_new_top_k_re_decides_the_library_from_stored_results(library: Library, music: Path) -> None:
    make(music / "a.wav", 0)
    settings = Settings(top_k=2, watch=WatchSettings(quiet_seconds=QUIET, reconcile_hours=0.0))
    with running(library, [music], reload=lambda: settings) as daemon:
        assert len(open_tags(music / "a.wav").read_genres()) == 1
        daemon.request_reload()
        assert wait_for(lambda: len(open_tags(music / "a.wav").read_genres()) == 2, timeout=20)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    assert track_rows(library.db)[str(music / "a.wav")] == (TrackStatus.DONE, 2)  # re-decided once


def test_idle_daemon_releases_its_workers(
    library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.processor.POOL_IDLE_SECONDS", 0.5)
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "a.wav", 1), music / "a.wav")
        assert wait_for(lambda: tagged(library.db, music / "a.wav"))
        assert wait_for(lambda: not daemon.processor.pool_held, timeout=10)
        shutil.copy(make(staging / "b.wav", 2), music / "b.wav")  # work again after the release
        assert wait_for(lambda: tagged(library.db, music / "b.wav"))
