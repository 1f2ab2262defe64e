"""The daemon's playlists: rewritten from the database after changes, at most once per interval."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from tagger.config import Settings
from tagger.errors import TaggerError
from tagger.genres import GenreRules
from tagger.m3u import TagCache
from tagger.playlists import PlaylistKind, write_playlists
from tagger.store import Database

log = logging.getLogger("tagger.playlists")


class PlaylistRefresher:
    """The daemon's hook: changes are noted as tracks are recorded; the playlists are rewritten at most
    once per ``interval`` seconds, and only after a change (a burst of 200 new tracks is one rewrite, not
    200). The first call writes them as the database has them. A refresh runs in its own thread, one at a
    time: the first one reads every file's tags (minutes for 100k files) and must not hold up tagging;
    file tags are cached between refreshes. A refresh cut short by the process ending leaves the previous
    playlists (each file is replaced atomically)."""

    def __init__(
        self,
        db: Database,
        folder: str | Path,
        kind: PlaylistKind = PlaylistKind.GENRE,
        min_confidence: float = 0.0,
        rules: GenreRules | None = None,
        interval: float = 30.0,
    ) -> None:
        self.db, self.folder, self.kind = db, Path(folder), kind
        self.min_confidence, self.rules, self.interval = min_confidence, rules or GenreRules(), interval
        self.cache = TagCache()
        self.refreshes = 0  # finished ones
        self._changed = True
        self._last = -math.inf
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> PlaylistRefresher:
        """The refresher for ``playlists_dir`` and the ``[playlists]`` table (``playlists_dir`` must be set)."""
        if settings.playlists_dir is None:
            raise ValueError("no playlists_dir in the settings")
        options = settings.playlists
        return cls(
            db,
            settings.playlists_dir,
            PlaylistKind(options.by),
            options.min_confidence,
            settings.genres,
            interval=options.refresh_seconds,
        )

    def note_change(self) -> None:
        """A track was recorded, moved or marked gone."""
        self._changed = True

    def maybe_refresh(self, now: float) -> bool:
        """Start a refresh if something changed, none is running and the last one started ``interval``
        seconds ago (``now``: :func:`time.monotonic`). A failed one is logged and retried after ``interval``."""
        if (self._thread is not None and self._thread.is_alive()) or not self._changed:
            return False
        if now - self._last < self.interval:
            return False
        self._changed, self._last = False, now
        self._thread = threading.Thread(target=self._refresh, name="playlists", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Until the refresh in progress, if any, has finished."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _refresh(self) -> None:
        try:
            done = write_playlists(self.db, self.folder, self.kind, self.min_confidence, self.rules, self.cache)
        except (TaggerError, OSError) as error:  # a database or folder problem: the next change tries again
            self._changed = True
            log.error("playlists not refreshed: %s", error)
            return
        self.refreshes += 1
        if done.written or done.removed:
            log.info(
                "playlists in %s: %d written, %d removed, %d unchanged",
                done.folder,
                len(done.written),
                len(done.removed),
                len(done.unchanged),
            )
