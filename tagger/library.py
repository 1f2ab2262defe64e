"""The per-track step shared by ``scan`` and the daemon: triage, then store + tags.

Order of writes for one track, so that a crash anywhere loses nothing:
1. one transaction records the result and a *pending* tag write holding the previous value;
2. the file is rewritten atomically (temp copy + rename, see :mod:`tagger.tags`);
3. one transaction marks the write applied and refreshes the track's size/mtime/fingerprint.
A pending write found on the next start is checked against the file and finished or redone
(:meth:`Library.recover`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagger.aggregate import TrackGenres, aggregate
from tagger.config import Settings
from tagger.errors import FileError, TagReadError, TagWriteError, UnsupportedFormatError
from tagger.files import open_regular
from tagger.genres import GenreRules
from tagger.model import Head, ModelCard
from tagger.pipeline import TrackAnalysis
from tagger.policy import Policy, decide
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.store.db import insert_if_absent
from tagger.tags import GenreTags, open_tags
from tagger.tags.base import finish_in_place, leftover_temps
from tagger.vocabulary import Vocabulary, resolve_vocabulary
from tagger.walk import canonical_path, is_under

_FINGERPRINT_BLOCK = 1 << 16


class Outcome(StrEnum):
    TAGGED = "tagged"  # genre written
    WOULD_TAG = "would-tag"  # --dry-run: what would be written
    KEPT = "kept"  # the owner's genre stays (policy keep)
    UNCHANGED = "unchanged"  # the file already says so
    LOW_CONFIDENCE = "low-confidence"  # recorded, not tagged
    SKIPPED = "skipped"  # unchanged since the last run
    MOVED = "moved"  # same content at a new path: path updated, not re-classified
    GONE = "gone"  # the file was deleted: marked gone, its history kept
    FAILED = "failed"  # unreadable, not audio, or the tag write was impossible


@dataclass
class TrackReport:
    """What happened to one track, for progress lines and the summary."""

    path: Path
    outcome: Outcome
    existing: list[str] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)
    confidence: float | None = None
    reason: str = ""
    album_note: str = ""  # album consensus: why this track's own genre is far from its album's


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
class FileState:
    size: int
    mtime_ns: int  # integers: exact on every database engine

    @classmethod
    def of(cls, path: str | Path) -> FileState:
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> FileState:
        return cls(st.st_size, st.st_mtime_ns)


def fingerprint(path: str | Path, size: int | None = None) -> str:
    """A cheap content hash: size plus the first, middle and last 64 KiB."""
    digest = hashlib.blake2b(digest_size=16)
    with open_regular(path) as f:  # never a FIFO: it would block the scan's main process
        size = os.fstat(f.fileno()).st_size if size is None else size
        digest.update(str(size).encode())
        for offset in sorted({0, max(0, size // 2 - _FINGERPRINT_BLOCK // 2), max(0, size - _FINGERPRINT_BLOCK)}):
            f.seek(offset)
            digest.update(f.read(_FINGERPRINT_BLOCK))
    return digest.hexdigest()


@dataclass
class Vanished:
    """What :meth:`Library.vanished` found under some roots."""

    paths: list[str] = field(default_factory=list)  # recorded tracks under a present root whose file is gone
    unmounted: dict[str, int] = field(default_factory=dict)  # missing or empty root -> its recorded tracks


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
    write: tuple[GenreTags, list[str]] | None = None


class Library:
    """A database of tracks plus the rules for writing their tags."""

    def __init__(self, db: Database, card: ModelCard, options: TagOptions | None = None) -> None:
        self.db = db
        self.card = card
        self.options = options or TagOptions()
        self.vocabulary: Vocabulary = resolve_vocabulary(card, self.options.vocabulary, db.url)
        self.head: Head = self.vocabulary.head

    # ------------------------------------------------------------------ triage
    def known_states(self, paths: list[str] | None = None) -> dict[str, tuple[int | None, int | None, str]]:
        """path -> (size, mtime_ns, status), for ``paths`` or every track, in one query (fast unchanged re-scans)."""
        query = select(Track.path, Track.size, Track.mtime_ns, Track.status)
        if paths is not None:
            query = query.where(Track.path.in_(paths))
        with self.db.session() as session:
            return {path: (size, mtime_ns, status) for path, size, mtime_ns, status in session.execute(query)}

    def known_state(self, path: str | Path) -> tuple[int | None, int | None, str] | None:
        with self.db.session() as session:
            row = session.execute(
                select(Track.size, Track.mtime_ns, Track.status).where(Track.path == str(path))
            ).one_or_none()
            return None if row is None else (row[0], row[1], row[2])

    @staticmethod
    def is_unchanged(known: tuple[int | None, int | None, str] | None, state: FileState) -> bool:
        return (
            known is not None
            and known[2] in (TrackStatus.DONE, TrackStatus.FAILED)
            and known[0] == state.size
            and known[1] == state.mtime_ns
        )

    def try_move(self, path: Path, root: Path, state: FileState) -> TrackReport | None:
        """If ``path`` holds the content of a track whose file is gone, move that track here.

        A track recorded under another spelling of this same path (``lib/../lib/a.flac``, as versions
        before canonical paths stored it) is taken over the same way, so it keeps its history."""
        try:
            digest = fingerprint(path, state.size)
        except (OSError, FileError):
            return None
        with self.db.session() as session:
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

    def vanished(self, roots: Iterable[str | Path]) -> Vanished:
        """The recorded tracks under ``roots`` whose files no longer exist. A root that is missing or
        empty while tracks are recorded under it is most likely not mounted: its tracks are left alone
        (and the root reported), never a whole library marked gone."""
        known = [path for path, (_, _, status) in self.known_states().items() if status != TrackStatus.GONE]
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

    def mark_gone(self, path: str | Path) -> bool:
        """The file was deleted: keep its history, mark it gone."""
        with self.db.session() as session:
            track = session.scalar(select(Track).where(Track.path == str(path)))
            if track is None or track.status == TrackStatus.GONE:
                return False
            track.status = TrackStatus.GONE
            return True

    def move(self, source: str | Path, destination: str | Path, root: str | Path | None = None) -> bool:
        """A rename seen by the daemon: update the path, keep the results."""
        with self.db.session() as session:
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
            track = self._track(session, analysis.path, plan.root)
            track.size, track.mtime_ns = plan.state.size, plan.state.mtime_ns
            track.fingerprint = _safe_fingerprint(analysis.path, plan.state.size)
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
                embedding=_embedding_bytes(analysis.embedding),
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
            write = session.get(TagWrite, write_id)
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
    def _track(session: Session, path: Path, root: Path) -> Track:
        track = session.scalar(select(Track).where(Track.path == str(path)))
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
        makes for that very file (:func:`tagger.tags.base.leftover_temps`), and only here, under the
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


def refresh_state(track: Track) -> None:
    """After our own write: new size/mtime/fingerprint, so it does not look changed next time."""
    try:
        state = FileState.of(track.path)
    except OSError:
        return
    track.size, track.mtime_ns = state.size, state.mtime_ns
    track.fingerprint = _safe_fingerprint(Path(track.path), state.size)


def _safe_fingerprint(path: Path, size: int) -> str | None:
    try:
        return fingerprint(path, size)
    except (OSError, FileError):
        return None


def _embedding_bytes(embedding: np.ndarray | None) -> bytes | None:
    return None if embedding is None else np.asarray(embedding, dtype=np.float16).tobytes()


def embedding_from_bytes(data: bytes | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, dtype=np.float16).astype(np.float32)


def _low_confidence_reason(genres: TrackGenres) -> str:
    """Why nothing was written: an abstaining head lists its ranked candidates ("uncertain: Rock 0.62, Pop 0.55")."""
    if genres.refused:
        return f"no allowed genre (model: {genres.top.genre} {genres.top.confidence:.2f})"
    if genres.abstained:
        return "uncertain: " + ", ".join(f"{s.genre} {s.confidence:.2f}" for s in genres.ranked)
    return f"confidence {genres.top.confidence:.2f}"
