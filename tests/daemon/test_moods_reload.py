"""The watch daemon and moods: the mood options come from the settings, and a SIGHUP reload applies new ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.config import Settings, WatchSettings
from tagger.record import Library, TagOptions
from tagger.store import Database, TrackStatus
from tagger.tags import open_tags
from tests.daemon.harness import QUIET, make, running, tagged, track_rows, wait_for
from tests.mood_card import mood_card

pytestmark = [pytest.mark.model]


def test_a_reload_turning_moods_on_writes_the_mood_of_tracks_already_tagged(
    database: Database, music: Path, tmp_path: Path
) -> None:
    card = mood_card(tmp_path / "card")
    library = Library(database, card, TagOptions.from_settings(Settings(moods=False)))
    assert library.moods is None
    path = make(music / "a.wav", 2)  # chimes: Happy
    settings = Settings(moods=True, watch=WatchSettings(quiet_seconds=QUIET, reconcile_hours=0.0))
    with running(library, [music], reload=lambda: settings) as daemon:
        assert wait_for(lambda: tagged(database, path))
        assert open_tags(path).read("genre") == ["chimes"] and open_tags(path).read("mood") == []
        daemon.request_reload()
        assert wait_for(lambda: daemon.library.moods is not None, timeout=5)
        assert wait_for(lambda: open_tags(path).read("mood") == ["Happy"], timeout=30)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    # The first result held no mood scores: the track was classified once more, its genre left as it was.
    assert track_rows(database)[str(path)] == (TrackStatus.DONE, 2)
    assert open_tags(path).read("genre") == ["chimes"]
