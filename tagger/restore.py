"""Putting back the genre and mood values this tool replaced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from tagger.errors import FileError
from tagger.store import Database, TagWrite, TagWriteStatus, Track
from tagger.store.models import utcnow
from tagger.tags import ROLES, Role, open_tags
from tagger.track import refresh_state
from tagger.walk import canonical_path, is_under


@dataclass
class RoleRestore:
    """One role's field of one file: put back or left, and what it says now."""

    role: Role
    restored: bool
    values: list[str]  # what the field says now (the restored value, or unchanged)
    reason: str = ""


@dataclass
class RestoreReport:
    path: Path
    restored: bool  # a role's field was put back (every role we wrote, unless one was changed since)
    genres: list[str]  # what the genre field says now (restored value, or unchanged)
    reason: str = ""  # why a role (or the file) was left as it is
    roles: list[RoleRestore] = field(default_factory=list)  # each role this tool wrote into the file

    @property
    def moods(self) -> list[str] | None:
        """What the MOOD field says now, where this tool wrote one; None: it never did."""
        return next((role.values for role in self.roles if role.role == "mood"), None)


def restore(
    db: Database, paths: Iterable[str | Path] = (), force: bool = False, dry_run: bool = False
) -> list[RestoreReport]:
    """Restore the value each file had before our first write of each role, one transaction per track.

    A role whose field was changed by someone after our write is left alone unless ``force``; the other
    role is still restored. Every role put back goes into the file in one rewrite.
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
        applied = sorted((w for w in track.tag_writes if w.status == TagWriteStatus.APPLIED), key=lambda w: w.id)
        by_role = {role: [w for w in applied if w.role == role] for role in ROLES}
        path = Path(track.path)
        try:
            tags = open_tags(path)
            now = {role: tags.read(role) for role in ROLES}
        except FileError as error:
            return RestoreReport(path, False, [], error.reason)
        roles: list[RoleRestore] = []
        originals: dict[Role, list[str]] = {}
        for role, writes in by_role.items():
            if not writes:
                continue
            if now[role] != writes[-1].new and not force:
                reason = f"{role} changed since our write (now {now[role]})"
                roles.append(RoleRestore(role, False, now[role], reason))
                continue
            originals[role] = writes[0].previous
            roles.append(RoleRestore(role, True, writes[0].previous))
        reason = "; ".join(role.reason for role in roles if role.reason)
        genres = originals.get("genre", now["genre"])
        if not originals or dry_run:
            return RestoreReport(path, bool(originals), genres, reason, roles)
        try:
            tags.write(originals)
        except FileError as error:
            failed = [RoleRestore(role, False, now[role], error.reason) for role in originals]
            return RestoreReport(path, False, now["genre"], error.reason, failed)
        for role, values in originals.items():
            for write in by_role[role]:
                write.status, write.restored_at = TagWriteStatus.RESTORED, utcnow()
            if role == "mood":
                track.file_moods = tags.as_stored(values, role)
            else:
                track.file_genres = tags.as_stored(values, role)
        refresh_state(track)
        return RestoreReport(path, True, genres, reason, roles)
