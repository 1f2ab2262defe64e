"""The per-track step shared by ``scan`` and the daemon: a result is stored and its genre written.

Order of writes for one track, so that a crash anywhere loses nothing:
1. one transaction records the result and a *pending* tag write holding the previous value;
2. the file is rewritten atomically (temp copy + rename, see :mod:`tagger.tags`);
3. one transaction marks the write applied and refreshes the track's size/mtime/fingerprint.
A pending write found on the next start is checked against the file and finished or redone
(:meth:`Library.recover`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from tagger.aggregate import TrackGenres, aggregate
from tagger.config import Settings
from tagger.errors import FileError, TagReadError, TagWriteError, UnsupportedFormatError
from tagger.genres import GenreRules
from tagger.model import Head, ModelCard
from tagger.pipeline import TrackAnalysis
from tagger.policy import Policy, decide
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus, queries
from tagger.store.db import insert_if_absent
from tagger.store.embedding import embedding_to_bytes
from tagger.tags import GenreTags, open_tags
from tagger.tags.safe_write import finish_in_place, leftover_temps
from tagger.track import (
    FileState,
    KnownState,
    Outcome,
    TrackReport,
    is_unchanged,
    refresh_state,
    safe_fingerprint,
)
from tagger.vocabulary import Vocabulary, resolve_vocabulary


@dataclass(frozen=True)
class TagOptions:
    """How results turn into tags (CLI flags and config)."""

    policy: Policy = Policy.KEEP
    min_confidence: float = 0.0
    top_k: int = 1
    dry_run: bool = False
    tag_low_confidence: bool = False
    vocabulary: str | None = None  # a model head or a learned vocabulary; None = the card's default
    id3_version: int = 4
    id3_separator: str = "; "
    verify: bool = False  # re-read every write and report a mismatch
    genres: GenreRules = field(default_factory=GenreRules)  # the owner's aliases, allow and ignore lists
    hardlinks: str = "keep"  # keep: a hard-linked file is written in place; break: replaced (links become copies)

    @property
    def decided_with(self) -> str:
        """The options a track's decision depends on, stored with its result: a scan with others re-decides
        the track from that stored result (no decoding), one with the same ones skips it."""
        return (
            f"policy={self.policy.value} top_k={self.top_k} min_confidence={self.min_confidence:g} "
            f"tag_low_confidence={int(self.tag_low_confidence)}"
            + ("" if self.genres.empty else f" genres={self.genres.fingerprint()}")
        )

    @classmethod
    def from_settings(cls, settings: Settings, dry_run: bool = False, verify: bool = False) -> TagOptions:
        """The options a config file and command line give (the daemon re-reads them on SIGHUP)."""
        return cls(
            policy=settings.policy,
            min_confidence=settings.min_confidence,
            top_k=settings.top_k,
            dry_run=dry_run,
            tag_low_confidence=settings.tag_low_confidence,
            vocabulary=settings.vocabulary,
            id3_version=settings.id3_version,
            id3_separator=settings.id3_separator,
            verify=verify,
            genres=settings.genres,
            hardlinks=settings.hardlinks,
        )


@dataclass(frozen=True)
class AlbumChoice:
    """Album consensus for one track: the album's mean probabilities, and whether the track is far from them."""

    probabilities: np.ndarray  # (labels,)
    far: bool = False


@dataclass
class _Plan:
    """What :meth:`Library.record` decided for one track, handed to :meth:`Library._store`."""

    analysis: TrackAnalysis
    root: Path
    state: FileState
    probabilities: np.ndarray
    genres: TrackGenres | None = None
    existing: list[str] | None = None  # the written field's genres; None: the tags could not be read
    owners: list[str] | None = None  # every genre the file carries (secondary tags too): what the policy keeps
    ours: bool = False  # the file's genre is our own last write
    recorded: bool | None = None  # the track had a row when looked up (under the writer lock); None: not looked up
    write: tuple[GenreTags, list[str]] | None = None


class Library:
    """A database of tracks plus the rules for writing their tags."""

    def __init__(self, db: Database, card: ModelCard, options: TagOptions | None = None) -> None:
        self.db = db
        self.card = card
        self.options = options or TagOptions()
        self.vocabulary: Vocabulary = resolve_vocabulary(card, self.options.vocabulary, db.url)
        self.head: Head = self.vocabulary.head

    # ------------------------------------------------------------------ track states
    # The store's queries (:mod:`tagger.store.queries`) on this library's database, for the scan and the daemon.
    def known_states(self, paths: list[str] | None = None) -> dict[str, KnownState]:
        return queries.known_states(self.db, paths)

    def known_state(self, path: str | Path) -> KnownState | None:
        return queries.known_state(self.db, path)

    is_unchanged = staticmethod(is_unchanged)

    def try_move(self, path: Path, root: Path, state: FileState) -> TrackReport | None:
        return queries.try_move(self.db, path, root, state)

    def vanished(self, roots: Iterable[str | Path]) -> queries.Vanished:
        return queries.vanished(self.db, roots)

    def mark_gone(self, path: str | Path) -> bool:
        return queries.mark_gone(self.db, path)

    def move(self, source: str | Path, destination: str | Path, root: str | Path | None = None) -> bool:
        return queries.move(self.db, source, destination, root)

    # ------------------------------------------------------------------ recording
    def record_failure(self, path: Path, root: Path, reason: str, state: FileState | None) -> TrackReport:
        if not self.options.dry_run:
            with self.db.session() as session:
                track = self._track(session, path, root)
                track.status, track.error = TrackStatus.FAILED, reason
                if state is not None:
                    track.size, track.mtime_ns = state.size, state.mtime_ns
        return TrackReport(path, Outcome.FAILED, reason=reason)

    def record(
        self, analysis: TrackAnalysis, root: Path, state: FileState, album: AlbumChoice | None = None
    ) -> TrackReport:
        """Store ``analysis`` and write the genre the policy allows (its album's, given ``album``)."""
        with self.db.writer_lock():
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
        if album is not None and album.far:
            own = aggregate(plan.probabilities, self.head, 1).top
            report.album_note = f"far from its album's genre: alone {own.genre} {own.confidence:.2f}"
        try:
            tags = self._open_tags(analysis.path)
            plan.existing = tags.read_genres()
            plan.owners = report.existing = tags.read_all_genres()
        except (TagReadError, UnsupportedFormatError) as error:
            report.outcome, report.reason = Outcome.FAILED, f"cannot read tags: {error.reason}"
            return self._store(plan, report)
        with self.db.session() as session:
            track = session.scalar(select(Track).where(Track.path == str(analysis.path)))
            plan.recorded = track is not None
            plan.ours = track is not None and self._is_ours(session, track, plan.existing)
        if not plan.genres.confident and not self.options.tag_low_confidence:
            report.outcome, report.reason = Outcome.LOW_CONFIDENCE, _low_confidence_reason(plan.genres)
            return self._store(plan, report)
        target = decide(plan.owners, list(plan.genres.chosen), self.options.policy, plan.ours)
        if target is not None:
            target = tags.as_stored(target)  # e.g. ID3v2.3 joins several genres into one value
            if target == plan.existing:
                target = None
        if target is None:
            kept = plan.owners and plan.owners != list(plan.genres.chosen) and not plan.ours
            report.outcome = Outcome.KEPT if kept else Outcome.UNCHANGED
            return self._store(plan, report)
        report.proposed = target
        if self.options.dry_run:
            report.outcome = Outcome.WOULD_TAG
            return report
        plan.write = (tags, target)
        return self._store(plan, report)

    def _store(self, plan: _Plan, report: TrackReport) -> TrackReport:
        """One transaction: track + result (+ the pending tag write, which is then applied)."""
        if self.options.dry_run:
            return report
        analysis, genres = plan.analysis, plan.genres
        assert genres is not None
        with self.db.session() as session:
            track = self._track(session, analysis.path, plan.root, missing=plan.recorded is False)
            track.size, track.mtime_ns = plan.state.size, plan.state.mtime_ns
            track.fingerprint = safe_fingerprint(analysis.path, plan.state.size)
            track.duration = analysis.duration
            track.format = analysis.path.suffix.lower().lstrip(".")
            if plan.owners is not None and not plan.ours:
                track.user_genres = plan.owners
            if plan.existing is not None:
                track.file_genres = plan.existing  # until our write below is applied
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
            )
            session.add(result)
            if plan.write is None:
                track.status = TrackStatus.DONE
                track.error = report.reason if report.outcome is Outcome.FAILED else None
                return report
            tags, target = plan.write
            track.status = TrackStatus.PENDING
            pending = TagWrite(track=track, result=result, field=tags.field, previous=plan.existing or [], new=target)
            session.add(pending)
            session.flush()
            write_id = pending.id
        return self._apply_write(write_id, tags, target, report)

    def _apply_write(self, write_id: int, tags: GenreTags, target: list[str], report: TrackReport) -> TrackReport:
        try:
            tags.write_genres(target)
            if self.options.verify:
                reread = self._open_tags(tags.path).read_genres()
                if reread != target:
                    raise TagWriteError(tags.path, f"verify: the file says {reread} after writing {target}")
            error = None
            report.outcome = Outcome.TAGGED
        except (TagWriteError, OSError) as failure:
            error = failure.reason if isinstance(failure, TagWriteError) else str(failure)
            report.outcome, report.reason = Outcome.FAILED, f"tag write not possible: {error}"
        with self.db.session() as session:
            write = session.get(TagWrite, write_id, options=[joinedload(TagWrite.track)])  # one query, not two
            assert write is not None
            write.status = TagWriteStatus.FAILED if error else TagWriteStatus.APPLIED
            write.error = error
            track = write.track
            track.status = TrackStatus.DONE
            track.error = report.reason or None
            if not error:
                track.file_genres = target
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
    def _is_ours(session: Session, track: Track, existing: list[str]) -> bool:
        last = session.scalar(
            select(TagWrite)
            .where(TagWrite.track_id == track.id, TagWrite.status == TagWriteStatus.APPLIED)
            .order_by(TagWrite.id.desc())
        )
        return last is not None and last.new == existing and bool(existing)

    # ------------------------------------------------------------------ crash recovery
    def recover(self) -> int:
        """Finish tag writes a crash interrupted: applied if the file has them, else redo the track.

        The temp copy such a write may have left next to the file is deleted: only a name the writer
        makes for that very file (:func:`tagger.tags.safe_write.leftover_temps`), and only here, under the
        writer lock, where no write of ours is in progress; a file merely named like one is not touched.
        """
        fixed = 0
        with self.db.writer_lock(), self.db.session() as session:
            for write in session.scalars(select(TagWrite).where(TagWrite.status == TagWriteStatus.PENDING)):
                track = write.track
                finish_in_place(Path(track.path), write.new)
                for leftover in leftover_temps(Path(os.path.realpath(track.path))):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
                try:
                    current = self._open_tags(track.path).read_genres()
                except (FileError, OSError):
                    current = None
                if current == write.new:
                    write.status = TagWriteStatus.APPLIED
                    track.status = TrackStatus.DONE
                    track.file_genres = current
                    refresh_state(track)
                else:
                    session.delete(write)
                    track.status = TrackStatus.PENDING  # the next scan classifies and writes again
                fixed += 1
        return fixed


def _low_confidence_reason(genres: TrackGenres) -> str:
    """Why nothing was written: an abstaining head lists its ranked candidates ("uncertain: Rock 0.62, Pop 0.55")."""
    if genres.refused:
        return f"no allowed genre (model: {genres.top.genre} {genres.top.confidence:.2f})"
    if genres.abstained:
        return "uncertain: " + ", ".join(f"{s.genre} {s.confidence:.2f}" for s in genres.ranked)
    return f"confidence {genres.top.confidence:.2f}"
