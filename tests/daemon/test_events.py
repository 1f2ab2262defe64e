"""Events -> typed changes: which events reach the queue, and the daemon's own writes that must not."""

from __future__ import annotations

import shutil
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from tagger.daemon.events import (
    FileDeleted,
    FileMoved,
    FolderAppeared,
    FolderDeleted,
    FolderMoved,
    RootChanged,
    Written,
    changes,
)
from tagger.record import Library
from tagger.tags import open_tags
from tests.daemon.harness import QUIET, make, result_count, running, tagged, track_rows, wait_for


def test_partial_and_hidden_files_are_ignored_until_renamed(library: Library, music: Path, staging: Path) -> None:
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "a.wav", 2), music / "download.flac.part")
        shutil.copy(make(staging / "b.wav", 3), music / ".hidden.wav")
        time.sleep(4 * QUIET)
        assert daemon.wait_idle(10, settle=QUIET)
        assert track_rows(library.db) == {}
        (music / "download.flac.part").rename(music / "download.wav")  # the download completed
        assert wait_for(lambda: tagged(library.db, music / "download.wav"))
    assert list(track_rows(library.db)) == [str(music / "download.wav")]


def test_own_tag_write_does_not_trigger_a_second_classification(library: Library, music: Path, staging: Path) -> None:
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "one.wav", 4), music / "one.wav")
        assert wait_for(lambda: tagged(library.db, music / "one.wav"))
        # the write (temp file renamed over the track) is seen and triaged as unchanged
        assert wait_for(lambda: daemon.counts["skipped"] >= 1, timeout=10)
        assert daemon.wait_idle(10, settle=4 * QUIET)
        assert result_count(library.db) == 1
        assert daemon.counts["tagged"] == 1
        assert open_tags(music / "one.wav").read_genres()


def test_each_watchdog_event_becomes_typed_changes() -> None:
    roots = ["/music", "/other"]
    assert changes(FileCreatedEvent("/music/a.flac"), roots) == [Written("/music/a.flac")]
    assert changes(FileClosedEvent("/music/a.flac"), roots) == [Written("/music/a.flac")]
    assert changes(FileModifiedEvent("/music/cover.jpg"), roots) == []  # no audio name
    assert changes(FileCreatedEvent("/music/a.flac.part"), roots) == []  # a download in progress
    assert changes(FileDeletedEvent("/music/a.flac"), roots) == [FileDeleted("/music/a.flac")]
    # the tag writer's own rewrite: a hidden temp file renamed over the track
    assert changes(FileMovedEvent("/music/.a.flac.tmp", "/music/a.flac"), roots) == [Written("/music/a.flac")]
    assert changes(FileMovedEvent("/music/a.flac", "/other/b.flac"), roots) == [
        FileMoved("/music/a.flac", "/other/b.flac"),
        Written("/other/b.flac"),
    ]
    assert changes(FileMovedEvent("/music/a.flac", "/elsewhere/a.flac"), roots) == [FileMoved("/music/a.flac", None)]
    assert changes(FileMovedEvent("/music/a.flac", "/music/a.flac.bak"), roots) == [FileMoved("/music/a.flac", None)]
    assert changes(DirCreatedEvent("/music/new"), roots) == [FolderAppeared("/music/new")]
    assert changes(DirDeletedEvent("/music/old"), roots) == [FolderDeleted("/music/old")]
    assert changes(DirMovedEvent("/music/x", "/music/y"), roots) == [
        FolderMoved("/music/x", "/music/y"),
        FolderAppeared("/music/y"),
    ]
    assert changes(DirMovedEvent("/music/x", "/musicx/y"), roots) == [FolderMoved("/music/x", None)]  # not a root
    assert changes(DirDeletedEvent("/music"), roots) == [RootChanged("/music")]
    assert changes(DirMovedEvent("/other", "/away"), roots) == [RootChanged("/other")]
    with pytest.raises(FrozenInstanceError):
        Written("/music/a.flac").path = "/music/b.flac"  # type: ignore[misc]
