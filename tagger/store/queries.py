"""The recorded tracks: their states for triage, moves and deletions, the live tracks under a folder, and each
track's latest result."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import aliased

from tagger.errors import FileError
from tagger.store.db import Database
from tagger.store.models import _RAW_PREFIX, Result, Track, TrackStatus
from tagger.track import FileState, KnownState, Outcome, TrackReport, fingerprint
from tagger.walk import canonical_path, is_under


# ------------------------------------------------------------------ track states
def known_states(db: Database, paths: list[str] | None = None) -> dict[str, KnownState]:
    """path -> (size, mtime_ns, status), for ``paths`` or every track, in one query (fast unchanged re-scans)."""
    query = select(Track.path, Track.size, Track.mtime_ns, Track.status)
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    with db.session() as session:
        return {path: (size, mtime_ns, status) for path, size, mtime_ns, status in session.execute(query)}


def known_state(db: Database, path: str | Path) -> KnownState | None:
    with db.session() as session:
        row = session.execute(
            select(Track.size, Track.mtime_ns, Track.status).where(Track.path == str(path))
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])


def move_sources(db: Database, walked: set[str]) -> set[str]:
    """The fingerprints of the tracks not at one of the ``walked`` paths: all a new file's content can move from
    (one query for a whole scan instead of one per new file; none at all on a first scan)."""
    with db.session() as session:
        rows = session.execute(select(Track.path, Track.fingerprint).where(Track.fingerprint.is_not(None)))
        return {digest for path, digest in rows if path not in walked and digest is not None}


def try_move(
    db: Database, path: Path, root: Path, state: FileState, sources: set[str] | None = None
) -> TrackReport | None:
    """If ``path`` holds the content of a track whose file is gone, move that track here.

    A track recorded under another spelling of this same path (``lib/../lib/a.flac``, as versions
    before canonical paths stored it) is taken over the same way, so it keeps its history.
    ``sources`` (:func:`move_sources`): the only fingerprints worth looking up; None: any."""
    if sources is not None and not sources:
        return None
    try:
        digest = fingerprint(path, state.size)
    except (OSError, FileError):
        return None
    if sources is not None and digest not in sources:
        return None
    with db.session() as session:
        for track in session.scalars(select(Track).where(Track.fingerprint == digest, Track.path != str(path))):
            if (
                track.status == TrackStatus.GONE
                or not os.path.lexists(track.path)
                or canonical_path(track.path) == path
            ):
                stale = session.scalar(select(Track).where(Track.path == str(path)))
                if stale is not None:
                    session.delete(stale)
                    session.flush()
                old = track.path
                track.path, track.root = str(path), str(root)
                track.size, track.mtime_ns = state.size, state.mtime_ns
                if track.status == TrackStatus.GONE:
                    track.status = TrackStatus.DONE
                return TrackReport(path, Outcome.MOVED, reason=f"from {old}")
    return None


@dataclass
class Vanished:
    """What :func:`vanished` found under some roots."""

    paths: list[str] = field(default_factory=list)  # recorded tracks under a present root whose file is gone
    unmounted: dict[str, int] = field(default_factory=dict)  # missing or empty root -> its recorded tracks


def vanished(db: Database, roots: Iterable[str | Path]) -> Vanished:
    """The recorded tracks under ``roots`` whose files no longer exist. A root that is missing or
    empty while tracks are recorded under it is most likely not mounted: its tracks are left alone
    (and the root reported), never a whole library marked gone."""
    found = Vanished()
    for root in roots:
        inside = tracks_under(db, root)
        if not inside:
            continue
        try:
            with os.scandir(root) as entries:
                empty = next(entries, None) is None
        except OSError:
            empty = True
        if empty:
            found.unmounted[str(root)] = len(inside)
        else:
            found.paths.extend(path for path in inside if not os.path.exists(path))
    return found


def mark_gone(db: Database, path: str | Path) -> bool:
    """The file was deleted: keep its history, mark it gone."""
    with db.session() as session:
        track = session.scalar(select(Track).where(Track.path == str(path)))
        if track is None or track.status == TrackStatus.GONE:
            return False
        track.status = TrackStatus.GONE
        return True


def move(db: Database, source: str | Path, destination: str | Path, root: str | Path | None = None) -> bool:
    """A rename seen by the daemon: update the path, keep the results."""
    with db.session() as session:
        track = session.scalar(select(Track).where(Track.path == str(source)))
        if track is None:
            return False
        stale = session.scalar(select(Track).where(Track.path == str(destination)))
        if stale is not None:
            session.delete(stale)
            session.flush()
        track.path = str(destination)
        if root is not None:
            track.root = str(root)
        return True


# ------------------------------------------------------------------ folders
def _path_starts_with(prefix: str, binary_order: bool) -> ColumnElement[bool]:
    if binary_order:  # SQLite compares text byte by byte: a range the unique index on path answers
        return and_(Track.path >= prefix, Track.path < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return Track.path.startswith(prefix, autoescape=True)  # a collation may order paths otherwise: LIKE


def tracks_under(db: Database, folder: str | Path) -> list[str]:
    """Paths of the tracks inside ``folder`` (not the folder itself) that are not marked gone.

    The database narrows by prefix; :func:`~tagger.walk.is_under` decides, because ``LIKE`` ignores case
    on SQLite and MariaDB, and names that are not UTF-8 are stored encoded (matched here once decoded).
    """
    folder = os.fspath(folder)
    prefix = folder.rstrip(os.sep) + os.sep
    binary_order = db.engine.dialect.name == "sqlite"
    encoded = _path_starts_with(_RAW_PREFIX, binary_order)
    try:
        prefix.encode("utf-8")
        narrowed = or_(_path_starts_with(prefix, binary_order), encoded)
    except UnicodeEncodeError:
        narrowed = encoded  # then every track inside is stored encoded
    query = select(Track.path).where(narrowed, Track.status != TrackStatus.GONE)
    with db.session() as session:
        return [path for path in session.scalars(query) if path != folder and is_under(path, [folder])]


# ------------------------------------------------------------------ results
def is_latest_result(
    model_id: str | None = None, vocabulary: str | None = None, with_embedding: bool = False
) -> ColumnElement[bool]:
    """True for the ``Result`` row that is its track's latest among those from ``model_id``, under
    ``vocabulary`` and holding an embedding (each where given): the one "latest result per track" rule.

    A filter on ``Result``, correlated with the query it is used in (one index lookup per row,
    ``ix_results_track_created``): ``select(Result).where(is_latest_result())``, or in a join's ON clause.
    """
    newer = aliased(Result)
    latest = select(func.max(newer.id)).where(newer.track_id == Result.track_id)
    if model_id is not None:
        latest = latest.where(newer.model_id == model_id)
    if vocabulary is not None:
        latest = latest.where(newer.vocabulary == vocabulary)
    if with_embedding:
        latest = latest.where(newer.embedding.is_not(None))
    return Result.id == latest.scalar_subquery()
