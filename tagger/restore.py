"""Putting back the genre values this tool replaced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tagger.errors import FileError
from tagger.library import Library
from tagger.store import Database, TagWrite, TagWriteStatus, Track
from tagger.store.models import utcnow
from tagger.tags import open_tags


@dataclass
class RestoreReport:
    path: Path
    restored: bool
    genres: list[str]  # what the file says now (restored value, or unchanged)
    reason: str = ""


def _selected(path: str, prefixes: list[str]) -> bool:
    return not prefixes or any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def restore(
    db: Database, paths: Iterable[str | Path] = (), force: bool = False, dry_run: bool = False
) -> list[RestoreReport]:
    """Restore the value each file had before our first write.

    A file whose genre was changed by someone after our write is left alone unless ``force``.
    """
    prefixes = [str(Path(p).expanduser().absolute()) for p in paths]
    reports: list[RestoreReport] = []
    with db.session() as session:
        tracks = session.scalars(
            select(Track).where(Track.tag_writes.any(TagWrite.status == TagWriteStatus.APPLIED)).order_by(Track.path)
        ).all()
        for track in tracks:
            if not _selected(track.path, prefixes):
                continue
            writes = sorted((w for w in track.tag_writes if w.status == TagWriteStatus.APPLIED), key=lambda w: w.id)
            original, ours = writes[0].previous, writes[-1].new
            path = Path(track.path)
            try:
                tags = open_tags(path)
                current = tags.read_genres()
                if current != ours and not force:
                    reports.append(RestoreReport(path, False, current, f"changed since our write (now {current})"))
                    continue
                if not dry_run:
                    tags.write_genres(original)
            except FileError as error:
                reports.append(RestoreReport(path, False, [], error.reason))
                continue
            if not dry_run:
                for write in writes:
                    write.status, write.restored_at = TagWriteStatus.RESTORED, utcnow()
                Library._refresh_state(track)
            reports.append(RestoreReport(path, True, original))
    return reports
