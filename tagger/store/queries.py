"""The recorded tracks: their states for triage, moves and deletions, and what the database can answer
without the audio (re-tagging from stored results)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import aliased

from tagger.errors import FileError
from tagger.pipeline import TrackAnalysis
from tagger.store.db import Database
from tagger.store.embedding import embedding_from_bytes
from tagger.store.models import Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.track import FileState, KnownState, Outcome, TrackReport, fingerprint
from tagger.vocabulary import LearnedVocabulary, Vocabulary
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


def try_move(db: Database, path: Path, root: Path, state: FileState) -> TrackReport | None:
    """If ``path`` holds the content of a track whose file is gone, move that track here.

    A track recorded under another spelling of this same path (``lib/../lib/a.flac``, as versions
    before canonical paths stored it) is taken over the same way, so it keeps its history."""
    try:
        digest = fingerprint(path, state.size)
    except (OSError, FileError):
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
    known = [path for path, (_, _, status) in known_states(db).items() if status != TrackStatus.GONE]
    found = Vanished()
    for root in roots:
        inside = [path for path in known if path != str(root) and is_under(path, [root])]  # inside, not the root
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


# ------------------------------------------------------------------ re-tagging from stored results


def stored_analyses(
    db: Database,
    vocabulary: Vocabulary,
    model_id: str,
    decided_with: str | None = None,
    paths: list[str] | None = None,
) -> dict[str, TrackAnalysis]:
    """path -> an analysis rebuilt from the database, for tracks that can be re-tagged without audio.

    That is a classified track (among ``paths``, if given) whose latest result is from ``model_id`` and

    * under this vocabulary, but decided with other options than ``decided_with`` (see
      :attr:`~tagger.record.TagOptions.decided_with`; unknown for rows older than that column)
      and not restored since: rebuilt from the stored window probabilities, so a new top-k or
      policy needs no decoding;
    * for a learned vocabulary, under another vocabulary (or under this name but older than the
      vocabulary's current version) with an embedding.
    """
    newer = aliased(Result)
    latest = select(func.max(newer.id)).where(newer.track_id == Track.id).scalar_subquery()  # per track (indexed)
    same = Result.vocabulary == vocabulary.name
    # A decision whose tag write the owner undid (`tagger restore`) is left alone: `--force` redoes it.
    restored = select(TagWrite.id).where(TagWrite.result_id == Result.id, TagWrite.status == TagWriteStatus.RESTORED)
    redecide = (
        and_(same, or_(Result.decided_with.is_(None), Result.decided_with != decided_with), ~restored.exists())
        if decided_with is not None
        else false()
    )
    stale: ColumnElement[bool] = redecide
    if not vocabulary.needs_audio:
        other = ~same
        if isinstance(vocabulary, LearnedVocabulary):
            other = or_(other, Result.created_at < vocabulary.learned_at)
        stale = or_(stale, and_(other, Result.embedding.is_not(None)))
    query = (
        select(Track.path, Track.duration, Result.model_id, Result.vocabulary, Result.windows, Result.embedding)
        .join(Result, Result.id == latest)
        .where(Track.status == TrackStatus.DONE, Result.model_id == model_id, stale)
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    analyses: dict[str, TrackAnalysis] = {}
    with db.session() as session:
        for path, duration, result_model, result_vocabulary, windows, embedding in session.execute(query):
            probabilities: dict[str, np.ndarray] = {}
            starts: list[float] = []
            if result_vocabulary == vocabulary.name and vocabulary.needs_audio:
                rows = np.asarray((windows or {}).get("probabilities") or [], dtype=np.float32)
                if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != len(vocabulary.head.labels):
                    continue  # nothing to re-decide from: left as it is (--force re-classifies)
                probabilities = {vocabulary.name: rows}
                starts = list(windows.get("starts") or [])
            elif embedding is None:
                continue  # a learned vocabulary reads the embedding: this track needs a scan with --force
            analyses[path] = TrackAnalysis(
                path=Path(path),
                model_id=result_model,
                duration=duration or 0.0,
                window_starts=starts,
                probabilities=probabilities,
                embedding=embedding_from_bytes(embedding),
            )
    return analyses


def outdated_writes(db: Database, vocabulary: Vocabulary, model_id: str, paths: list[str] | None = None) -> set[str]:
    """Paths of unchanged-looking tracks to classify again (decoded) because the default moved on.

    A classified track whose latest result is from another model (``model_id``) or another model
    head than ``vocabulary``, and whose genre this tool wrote (its latest tag write applied, not
    restored): its stored probabilities are the old head's, so only the audio can give the new
    genres. Where the owner's genre was kept, or the owner restored it, the track is left alone.
    A learned vocabulary is not concerned: it reads embeddings of its own model only.
    """
    if not vocabulary.needs_audio:
        return set()
    newer = aliased(Result)
    latest = select(func.max(newer.id)).where(newer.track_id == Track.id).scalar_subquery()
    write = aliased(TagWrite)
    latest_write = select(func.max(write.id)).where(write.track_id == Track.id).scalar_subquery()
    query = (
        select(Track.path)
        # track_id spelled out too: the same rows, and the planner sees how the tables connect
        .join(Result, and_(Result.track_id == Track.id, Result.id == latest))
        .join(TagWrite, and_(TagWrite.track_id == Track.id, TagWrite.id == latest_write))
        .where(
            Track.status == TrackStatus.DONE,
            TagWrite.status == TagWriteStatus.APPLIED,
            or_(Result.model_id != model_id, Result.vocabulary != vocabulary.name),
        )
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    with db.session() as session:
        return set(session.scalars(query))
