"""Roots and their observers: deleted, recreated, unmounted and back; the polling observer."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tagger.record import Library
from tagger.store import TrackStatus
from tests.daemon.harness import make, running, tagged, track_rows, wait_for


def test_a_root_deleted_and_recreated_is_watched_again(
    library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 0.2)
    make(music / "old.wav", 0)
    with running(library, [music]) as daemon:
        assert tagged(library.db, music / "old.wav")
        shutil.rmtree(music)
        assert wait_for(lambda: str(music) in daemon.status()["missing_roots"], timeout=10), daemon.status()
        assert "1 missing" in daemon._status_line()
        music.mkdir()
        assert wait_for(lambda: not daemon.status()["missing_roots"], timeout=10)
        shutil.copy(make(staging / "new.wav", 1), music / "new.wav")
        assert wait_for(lambda: tagged(library.db, music / "new.wav"), timeout=20)
        (music / "sub").mkdir()  # and the new observer watches the whole tree, not just the top folder
        shutil.copy(make(staging / "deep.flac", 2), music / "sub" / "deep.flac")
        assert wait_for(lambda: tagged(library.db, music / "sub" / "deep.flac"), timeout=20)


def test_a_root_that_goes_away_keeps_its_tracks_and_is_caught_up_when_back(
    library: Library, music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like an unmounted disk: the folder goes away whole (no per-file deletions) and comes back."""
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 0.2)
    make(music / "kept.wav", 0)
    away = tmp_path / "unmounted"
    with running(library, [music], reconcile_hours=1 / 3600) as daemon:
        assert tagged(library.db, music / "kept.wav")
        music.rename(away)
        assert wait_for(lambda: str(music) in daemon.status()["missing_roots"], timeout=10)
        gone_at = time.time()
        # a reconcile (every second here) while it is away marks nothing gone
        assert wait_for(lambda: (daemon.last_reconcile or 0) > gone_at + 0.5, timeout=20)
        assert track_rows(library.db)[str(music / "kept.wav")][0] == TrackStatus.DONE
        make(away / "while-away.wav", 1)  # written while it was not watched
        away.rename(music)
        assert wait_for(lambda: tagged(library.db, music / "while-away.wav"), timeout=20)
        assert wait_for(lambda: not daemon.status()["missing_roots"], timeout=10)
    assert track_rows(library.db)[str(music / "kept.wav")] == (TrackStatus.DONE, 1)  # not re-classified


def test_polling_observer(library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tagger.daemon.roots.POLL_INTERVAL", 0.5)
    with running(library, [music], polling=True) as daemon:
        shutil.copy(make(staging / "p.flac", 3), music / "p.flac")
        assert wait_for(lambda: tagged(library.db, music / "p.flac"), timeout=20)
        assert daemon.status()["observers"] == {str(music): "polling"}
