"""Putting back the genre values this tool replaced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tagger.errors import FileError
from tagger.store import Database, TagWrite, TagWriteStatus, Track
from tagger.store.models import utcnow
from tagger.tags import open_tags
from tagger.track import refresh_state
from tagger.walk import canonical_path, is_under


@dataclass
class RestoreReport:
    path: Path
    restored: bool
    genres: list[str]  # what the file says now (restored value, or unchanged)
    reason: str = ""


def restore(
    db: Database, paths: Iterable[str | Path] = (), force: bool = False, dry_run: bool = False
) -> list[RestoreReport]:
    """Restore the value each file had before our first write, one transaction per track.

    A file whose genre was changed by someone after our write is left alone unless ``force``.
    """
    prefixes = [canonical_path(p) for p in paths]
    with db.session() as session:
        candidates = session.execute(
            select(Track.id, Track.path)
            .where(Track.tag_writes.any(TagWrite.status == TagWriteStatus.APPLIED))
            .order_by(Track.path)
        ).all()
    return [
        _restore_track(db, track_id, force, dry_run)
        for track_id, path in candidates
        if not prefixes or is_under(path, prefixes)
    ]


def _restore_track(db: Database, track_id: int, force: bool, dry_run: bool) -> RestoreReport:
    with db.writer_lock(), db.session() as session:
        track = session.get(Track, track_id)
        assert track is not None
        writes = sorted((w for w in track.tag_writes if w.status == TagWriteStatus.APPLIED), key=lambda w: w.id)
        original, ours = writes[0].previous, writes[-1].new
        path = Path(track.path)
        try:
            tags = open_tags(path)
            current = tags.read_genres()
            if current != ours and not force:
                return RestoreReport(path, False, current, f"changed since our write (now {current})")
            if dry_run:
                return RestoreReport(path, True, original)
            tags.write_genres(original)
        except FileError as error:
            return RestoreReport(path, False, [], error.reason)
        for write in writes:
            write.status, write.restored_at = TagWriteStatus.RESTORED, utcnow()
        track.file_genres = tags.as_stored(original)
        refresh_state(track)
        return RestoreReport(path, True, original)
