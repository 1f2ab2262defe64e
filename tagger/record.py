"""The per-track step shared by ``scan`` and the daemon: a result is stored and its genre and mood written.

The genre and the mood (the card's mood head, or a learned mood vocabulary) are decided from the same analysis,
each by the same rule (:func:`tagger.decision.decide_role`): its own proposal, the file's values of that role,
our own last write of that role, the policy. Order of writes for one track, so that a crash anywhere loses nothing:
1. one transaction records the result and a *pending* tag write per role written, holding its previous value;
2. the file is rewritten once, atomically, both fields at a time (temp copy + rename, see :mod:`tagger.tags`);
3. one transaction marks the writes applied and refreshes the track's size/mtime/fingerprint.
A pending write found on the next start is checked against the file and finished or redone
(:meth:`Library.recover`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from tagger.aggregate import TrackGenres, aggregate
from tagger.decision import FieldState, RoleDecision, decide_role
from tagger.errors import FileError, TagReadError, TagWriteError, UnsupportedFormatError
from tagger.model import Head, ModelCard
from tagger.moods import mood_record, stored_mood_rows
from tagger.pipeline import TrackAnalysis
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus, queries
from tagger.store.db import insert_if_absent
from tagger.store.embedding import embedding_to_bytes
from tagger.tag_options import TagOptions as TagOptions  # its home before tagger.tag_options
from tagger.tags import ROLES, GenreTags, Role, open_tags
from tagger.tags.safe_write import finish_in_place, leftover_temps
from tagger.track import (
    FileState,
    KnownState,
    Outcome,
    RoleReport,
    TrackReport,
    is_unchanged,
    refresh_state,
    safe_fingerprint,
)
from tagger.vocabulary import Vocabulary, resolve_mood_vocabulary, resolve_vocabulary


@dataclass(frozen=True)
class AlbumChoice:
    """Album consensus for one track: the album's mean probabilities, and whether the track is far from them."""

    probabilities: np.ndarray  # (labels,)
    far: bool = False


@dataclass(frozen=True)
class RecordJob:
    """One track's record as a value, what :meth:`Library.record_job` takes: an analysis made from ``path`` as it was
    at ``state`` (or why it could not be made), or one rebuilt from the database to re-tag an unchanged track.
    A value, so that a recording process (:class:`tagger.recorders.RecordingProcesses`) can be sent it."""

    root: Path
    path: Path
    state: FileState
    analysed: TrackAnalysis | FileError
    album: AlbumChoice | None = None


@dataclass
class _Plan:
    """What :meth:`Library.record` decided for one track, handed to :meth:`Library._store`."""

    analysis: TrackAnalysis
    root: Path
    state: FileState
    probabilities: np.ndarray
    genres: TrackGenres | None = None
    moods: TrackGenres | None = None  # None: no mood decided (moods off, no mood head, no stored scores)
    mood_rows: np.ndarray | None = None  # the mood head's (windows, labels) scores
    fields: dict[Role, FieldState] = field(default_factory=dict)  # per role, as read; empty: the tags unreadable
    write: tuple[GenreTags, dict[Role, list[str]]] | None = None
    recorded: bool | None = None  # the track had a row when looked up (under the file's lock); None: not looked up


class Library:
    """A database of tracks plus the rules for writing their tags."""

    def __init__(self, db: Database, card: ModelCard, options: TagOptions | None = None) -> None:
        self.db = db
        self.card = card
        self.options = options or TagOptions()
        self.vocabulary: Vocabulary = resolve_vocabulary(card, self.options.vocabulary, db.url)
        self.head: Head = self.vocabulary.head
        self.moods: Vocabulary | None = (
            resolve_mood_vocabulary(card, self.options.mood_vocabulary, db.url) if self.options.moods else None
        )

    # ------------------------------------------------------------------ track states
    # The store's queries (:mod:`tagger.store.queries`) on this library's database, for the scan and the daemon.
    def known_states(self, paths: list[str] | None = None) -> dict[str, KnownState]:
        return queries.known_states(self.db, paths)

    def known_state(self, path: str | Path) -> KnownState | None:
        return queries.known_state(self.db, path)

    is_unchanged = staticmethod(is_unchanged)

    def move_sources(self, walked: set[str]) -> set[str]:
        return queries.move_sources(self.db, walked)

    def try_move(self, path: Path, root: Path, state: FileState, sources: set[str] | None = None) -> TrackReport | None:
        return queries.try_move(self.db, path, root, state, sources)

    def vanished(self, roots: Iterable[str | Path]) -> queries.Vanished:
        return queries.vanished(self.db, roots)

    def mark_gone(self, path: str | Path) -> bool:
        return queries.mark_gone(self.db, path)

    def move(self, source: str | Path, destination: str | Path, root: str | Path | None = None) -> bool:
        return queries.move(self.db, source, destination, root)

    # ------------------------------------------------------------------ recording
    def record_failure(self, path: Path, root: Path, reason: str, state: FileState | None) -> TrackReport:
        if not self.options.dry_run:
            with self.db.session(writing=True) as session:
                track = self._track(session, path, root)
                track.status, track.error = TrackStatus.FAILED, reason
                if state is not None:
                    track.size, track.mtime_ns = state.size, state.mtime_ns
        return TrackReport(path, Outcome.FAILED, reason=reason)

    def record_job(self, job: RecordJob) -> TrackReport:
        """Record ``job``, unless its analysis failed (recorded failed) or its file changed since it was analysed."""
        path, root, state = job.path, job.root, job.state
        if isinstance(job.analysed, FileError):
            return self.record_failure(path, root, job.analysed.reason, state)
        try:
            current = FileState.of(path)
        except OSError:
            return self.record_failure(path, root, "vanished while being read", None)
        if current != state:
            if self.is_unchanged(self.known_state(path), current):
                return TrackReport(path, Outcome.SKIPPED, reason="handled meanwhile by another tagger process")
            # Someone is still writing it: record nothing; its new size/mtime make the next run retry.
            return TrackReport(path, Outcome.FAILED, reason="changed while being read; next run retries")
        return self.record(job.analysed, root, state, job.album)

    def record(
        self, analysis: TrackAnalysis, root: Path, state: FileState, album: AlbumChoice | None = None
    ) -> TrackReport:
        """Store ``analysis`` and write the genre (its album's, given ``album``) and the mood the policy allows."""
        with self.db.track_lock(analysis.path):  # records of other files go on meanwhile
            return self._record(analysis, root, state, album)

    def _record(
        self, analysis: TrackAnalysis, root: Path, state: FileState, album: AlbumChoice | None = None
    ) -> TrackReport:
        plan = _Plan(analysis, root, state, self.vocabulary.window_probabilities(analysis))
        # The stored windows stay the track's own; only the decision reads the album's mean.
        decided_from = plan.probabilities if album is None else album.probabilities[None, :]
        plan.genres = aggregate(
            decided_from, self.head, self.options.top_k, self.options.min_confidence, self.options.genres
        )
        report = TrackReport(
            analysis.path, Outcome.UNCHANGED, proposed=list(plan.genres.chosen), confidence=plan.genres.top.confidence
        )
        if self.moods is not None and (rows := self._mood_rows(analysis, self.moods)) is not None:
            # One mood per track, the head's own abstain rule; the genre's thresholds and rules are the genre's.
            plan.mood_rows, plan.moods = rows, aggregate(rows, self.moods.head, 1)
            report.mood = RoleReport(Outcome.UNCHANGED, proposed=list(plan.moods.chosen),
                                     confidence=plan.moods.top.confidence)  # fmt: skip
        if album is not None and album.far:
            own = aggregate(plan.probabilities, self.head, 1).top
            report.album_note = f"far from its album's genre: alone {own.genre} {own.confidence:.2f}"
        try:
            tags = self._open_tags(analysis.path)
            plan.fields = {"genre": FieldState(tags.read("genre"), tags.read_all("genre"))}
        except (TagReadError, UnsupportedFormatError) as error:
            report.fail(f"cannot read tags: {error.reason}")
            return self._store(plan, report)
        report.existing = plan.fields["genre"].owners
        try:
            plan.fields["mood"] = FieldState(tags.read("mood"), tags.read_all("mood"))
        except TagReadError as error:
            # A MOOD value that is not text (a binary WM/Mood) cannot be recorded, so it is not replaced: the mood
            # fails, the genre goes on alone (a genre write keeps that value byte for byte).
            if report.mood is not None:
                report.mood.outcome, report.mood.reason = Outcome.FAILED, f"cannot read its mood: {error.reason}"
        if report.mood is not None and "mood" in plan.fields:
            report.mood.existing = plan.fields["mood"].owners
        with self.db.session() as session:
            track = session.scalar(select(Track).where(Track.path == str(analysis.path)))
            plan.recorded = track is not None
            for role, values in plan.fields.items():
                values.ours = track is not None and self._is_ours(session, track, role, values.existing)
        proposals: list[tuple[Role, TrackGenres | None]] = [("genre", plan.genres), ("mood", plan.moods)]
        decisions = {
            role: self._decide(role, made, plan.fields[role], tags)
            for role, made in proposals
            if made and role in plan.fields
        }
        targets: dict[Role, list[str]] = {}
        for role, decided in decisions.items():
            side = report.side(role)
            side.outcome, side.reason = decided.outcome, decided.reason
            if decided.target is not None:
                targets[role] = side.proposed = decided.target
        if not targets:
            return self._store(plan, report)
        if self.options.dry_run:
            for role in targets:
                report.side(role).outcome = Outcome.WOULD_TAG
            return report
        plan.write = (tags, targets)
        return self._store(plan, report)

    def _decide(self, role: Role, decision: TrackGenres, values: FieldState, tags: GenreTags) -> RoleDecision:
        options = self.options
        stored = lambda target: tags.as_stored(target, role)  # noqa: E731 - as the file will say it
        return decide_role(decision, values, options.policy, options.tag_low_confidence, stored)

    @staticmethod
    def _mood_rows(analysis: TrackAnalysis, moods: Vocabulary) -> np.ndarray | None:
        """The mood head's scores of this track: its windows', or the stored decision's when the analysis was
        rebuilt from the database; None when neither has them (a result from before moods)."""
        if not moods.needs_audio:
            return None if analysis.embedding is None else moods.window_probabilities(analysis)
        if moods.name in analysis.probabilities:
            return moods.window_probabilities(analysis)
        return stored_mood_rows(analysis.stored_moods, moods.head)

    def _store(self, plan: _Plan, report: TrackReport) -> TrackReport:
        """One transaction: track + result (+ a pending tag write per role, which are then applied)."""
        if self.options.dry_run:
            return report
        analysis, genres = plan.analysis, plan.genres
        assert genres is not None
        with self.db.session(writing=True) as session:
            track = self._track(session, analysis.path, plan.root, missing=plan.recorded is False)
            track.size, track.mtime_ns = plan.state.size, plan.state.mtime_ns
            track.fingerprint = safe_fingerprint(analysis.path, plan.state.size)
            track.duration = analysis.duration
            track.format = analysis.path.suffix.lower().lstrip(".")
            for role, values in plan.fields.items():
                if not values.ours:
                    track.set_values(role, values.owners, owners=True)
                track.set_values(role, values.existing)  # until our write below is applied
            result = Result(
                track=track,
                model_id=analysis.model_id,
                vocabulary=genres.vocabulary,
                genres=[
                    {"label": s.label, "genre": s.genre, "confidence": round(s.confidence, 4)} for s in genres.ranked
                ],
                chosen=list(genres.chosen),
                confident=genres.confident,
                windows=analysis.window_timeline(plan.probabilities),
                embedding=embedding_to_bytes(analysis.embedding),
                decided_with=self.options.decided_with,
                moods=self._mood_record(plan),
            )
            session.add(result)
            if plan.write is None:
                track.status = TrackStatus.DONE
                track.error = report.reason if report.outcome is Outcome.FAILED else None
                return report
            tags, targets = plan.write
            track.status = TrackStatus.PENDING
            fields = {role: (tags.field_name(role), plan.fields[role].existing) for role in targets}
            pending = [
                TagWrite(
                    track=track, result=result, role=role, field=fields[role][0], previous=fields[role][1], new=new
                )
                for role, new in targets.items()
            ]
            session.add_all(pending)
            session.flush()
            write_ids = [write.id for write in pending]
        return self._apply_write(write_ids, tags, targets, report)

    def _mood_record(self, plan: _Plan) -> dict[str, Any] | None:
        if plan.moods is None or plan.mood_rows is None or self.moods is None:
            return None
        return mood_record(plan.moods, plan.mood_rows, self.moods.head)

    def _apply_write(
        self, write_ids: list[int], tags: GenreTags, targets: dict[Role, list[str]], report: TrackReport
    ) -> TrackReport:
        try:
            tags.write(targets)  # one rewrite of the file, every role at a time
            if self.options.verify:
                reread = self._open_tags(tags.path)
                for role, target in targets.items():
                    if (says := reread.read(role)) != target:
                        raise TagWriteError(tags.path, f"verify: the file's {role} says {says} after writing {target}")
            error = None
            for role in targets:
                report.side(role).outcome = Outcome.TAGGED
        except (TagWriteError, OSError) as failure:
            error = failure.reason if isinstance(failure, TagWriteError) else str(failure)
            report.fail(f"tag write not possible: {error}")
        with self.db.session(writing=True) as session:
            track: Track | None = None
            for write_id in write_ids:
                write = session.get(TagWrite, write_id, options=[joinedload(TagWrite.track)])  # one query, not two
                assert write is not None
                write.status = TagWriteStatus.FAILED if error else TagWriteStatus.APPLIED
                write.error = error
                track = write.track
                if not error:
                    track.set_values(write.role, write.new)
            assert track is not None
            track.status = TrackStatus.DONE
            track.error = report.reason if report.outcome is Outcome.FAILED else None
            refresh_state(track)
            if error:
                track.mtime_ns = None  # retried next run: making a file writable (chmod) leaves its mtime alone
        return report

    def _open_tags(self, path: str | Path) -> GenreTags:
        options = self.options
        return open_tags(
            path, id3_version=options.id3_version, id3_separator=options.id3_separator, hardlinks=options.hardlinks
        )

    @staticmethod
    def _track(session: Session, path: Path, root: Path, missing: bool = False) -> Track:
        """The track's row, made if absent; ``missing``: the caller's lookup just found none (no second look)."""
        track = None if missing else session.scalar(select(Track).where(Track.path == str(path)))
        if track is None:
            # Another process (the daemon, another user's scan) may record this file right now: its row is used.
            insert_if_absent(session, Track, path=str(path), root=str(root))
            # A locking read sees the other's committed row even under REPEATABLE READ (MariaDB's default).
            track = session.scalar(select(Track).where(Track.path == str(path)).with_for_update())
            assert track is not None
        track.root = str(root)
        return track

    @staticmethod
    def _is_ours(session: Session, track: Track, role: Role, existing: list[str]) -> bool:
        """The field of ``role`` says what our last applied write of that role wrote."""
        last = session.scalar(
            select(TagWrite)
            .where(TagWrite.track_id == track.id, TagWrite.role == role, TagWrite.status == TagWriteStatus.APPLIED)
            .order_by(TagWrite.id.desc())
        )
        return last is not None and last.new == existing and bool(existing)

    # ------------------------------------------------------------------ crash recovery
    def recover(self) -> int:
        """Finish tag writes a crash interrupted: applied if the file has them, else redo the track. Returns
        the tracks concerned (a track's genre and mood writes went into the file in one rewrite: one each).

        The temp copy such a write may have left next to the file is deleted: only a name the writer
        makes for that very file (:func:`tagger.tags.safe_write.leftover_temps`), and only here, under the
        writer lock, where no write of ours is in progress; a file merely named like one is not touched.
        """
        with self.db.writer_lock(), self.db.session() as session:
            pending: dict[int, list[TagWrite]] = {}
            for write in session.scalars(select(TagWrite).where(TagWrite.status == TagWriteStatus.PENDING)):
                pending.setdefault(write.track_id, []).append(write)
            for writes in pending.values():
                track = writes[0].track
                for write in writes:  # the staged copy holds every role: the first call finishes it
                    finish_in_place(Path(track.path), write.new, _role(write.role))
                for leftover in leftover_temps(Path(os.path.realpath(track.path))):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
                try:
                    tags = self._open_tags(track.path)
                    current: dict[str, list[str]] = {role: tags.read(role) for role in ROLES}
                except (FileError, OSError):
                    current = {}  # unreadable now: redone by the next scan, which reports why
                redo = False
                for write in writes:
                    if current.get(write.role) == write.new:
                        write.status = TagWriteStatus.APPLIED
                        track.set_values(write.role, write.new)
                    else:
                        session.delete(write)
                        redo = True
                if redo:
                    track.status = TrackStatus.PENDING  # the next scan classifies and writes again
                else:
                    track.status = TrackStatus.DONE
                    refresh_state(track)
        return len(pending)


def _role(name: str) -> Role:
    """A stored ``tag_writes.role`` as the tags API takes it."""
    return "mood" if name == "mood" else "genre"
