"""A watch daemon in a thread, and what the tests read back (the daemon tests, and the walk and writer tests).

The quiet period is 0.5 s so every test runs in seconds; files are 1 s WAV/FLAC at the model's rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from tagger.config import Settings, WatchSettings
from tagger.daemon import Daemon
from tagger.record import Library
from tagger.store import Database, Result, Track, TrackStatus
from tagger.systemd import Notifier
from tagger.tags import open_tags
from tests.audio_factory import make_track

QUIET = 0.5
GENRES = ["drone", "techno", "chimes", "breaks", "organ"]
REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def track_rows(db: Database) -> dict[str, tuple[str, int]]:
    """path -> (status, number of classifications)."""
    with db.session() as session:
        rows = session.execute(
            select(Track.path, Track.status, func.count(Result.id)).outerjoin(Result).group_by(Track.id)
        )
        return {path: (status, count) for path, status, count in rows}


def result_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Result.id))) or 0


def tagged(db: Database, path: Path) -> bool:
    row = track_rows(db).get(str(path))
    return row is not None and row[0] == TrackStatus.DONE and row[1] >= 1 and bool(open_tags(path).read_genres())


def make(path: Path, seed: int = 0) -> Path:
    return make_track(path, genre=GENRES[seed % len(GENRES)], seconds=1.0, sample_rate=16000, seed=seed)


@contextmanager
def running(
    library: Library,
    roots: list[Path],
    isolate: bool = False,
    reload: Callable[[], Settings] | None = None,
    **watch: object,
) -> Iterator[Daemon]:
    """A daemon in a thread. ``isolate=False`` (classify in-process) saves each test the worker start-up
    (~4 s); the burst and SIGTERM tests keep the real worker pool."""
    settings = WatchSettings(**{"quiet_seconds": QUIET, "reconcile_hours": 0.0, **watch})  # type: ignore[arg-type]
    daemon = Daemon(library, roots, settings, isolate=isolate, reload=reload, notifier=Notifier({}))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert wait_for(daemon.caught_up.is_set), "catch-up did not finish"
        yield daemon
    finally:
        daemon.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "daemon did not stop"


# ---------------------------------------------------------------------------- debounce
