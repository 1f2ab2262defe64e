"""What one track is to the scan and the daemon: its file's state, its content fingerprint, what happened to it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from tagger.errors import FileError
from tagger.files import open_regular
from tagger.store.models import Track, TrackStatus

_FINGERPRINT_BLOCK = 1 << 16

KnownState = tuple[int | None, int | None, str]
"""A recorded track as triage sees it: (size, mtime_ns, status)."""


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
class RoleReport:
    """What happened to one role's field of one track (the mood's; the genre's is the track report itself)."""

    outcome: Outcome
    existing: list[str] = field(default_factory=list)  # every value the file carried (read_all)
    proposed: list[str] = field(default_factory=list)  # the model's, or what was (would be) written
    confidence: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome.value, "existing": self.existing, "proposed": self.proposed,
                "confidence": self.confidence, "reason": self.reason}  # fmt: skip


@dataclass
class TrackReport:
    """What happened to one track, for progress lines and the summary.

    ``outcome``, ``existing``, ``proposed``, ``confidence`` and ``reason`` are the genre's, and the track's
    as a whole where no role was decided (skipped, moved, gone, failed: then ``mood`` is None too).
    ``mood``: the mood's own, when moods were decided; written in the same rewrite, so a failed write fails both.
    """

    path: Path
    outcome: Outcome
    existing: list[str] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)
    confidence: float | None = None
    reason: str = ""
    album_note: str = ""  # album consensus: why this track's own genre is far from its album's
    mood: RoleReport | None = None

    @property
    def changed(self) -> bool:
        """A role was (or, with --dry-run, would be) written."""
        written = (Outcome.TAGGED, Outcome.WOULD_TAG)
        return self.outcome in written or (self.mood is not None and self.mood.outcome in written)

    def side(self, role: str) -> TrackReport | RoleReport:
        """Where this report says what happened to ``role``: the genre's is the track report itself."""
        if role == "genre":
            return self
        assert self.mood is not None
        return self.mood

    def fail(self, reason: str) -> None:
        """The track failed, and with it every role decided (one file, one rewrite)."""
        self.outcome, self.reason = Outcome.FAILED, reason
        if self.mood is not None:
            self.mood.outcome, self.mood.reason = Outcome.FAILED, reason


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


def is_unchanged(known: KnownState | None, state: FileState) -> bool:
    """Recorded as done (or failed) with this very size and mtime: nothing to do."""
    return (
        known is not None
        and known[2] in (TrackStatus.DONE, TrackStatus.FAILED)
        and known[0] == state.size
        and known[1] == state.mtime_ns
    )


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


def safe_fingerprint(path: Path, size: int) -> str | None:
    try:
        return fingerprint(path, size)
    except (OSError, FileError):
        return None


def refresh_state(track: Track) -> None:
    """After our own write: new size/mtime/fingerprint, so it does not look changed next time."""
    try:
        state = FileState.of(track.path)
    except OSError:
        return
    track.size, track.mtime_ns = state.size, state.mtime_ns
    track.fingerprint = safe_fingerprint(Path(track.path), state.size)
