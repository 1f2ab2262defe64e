"""The database schema (SQLAlchemy 2 ORM). Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

_RAW_PREFIX = "fsbytes:"


class FilePath(TypeDecorator[str]):
    """A file system path as text; names that are not valid UTF-8 round-trip through base64.

    Python gives such names as ``str`` with surrogate escapes, which no database accepts as text.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return _RAW_PREFIX + base64.b64encode(os.fsencode(value)).decode("ascii")

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is not None and value.startswith(_RAW_PREFIX):
            return os.fsdecode(base64.b64decode(value[len(_RAW_PREFIX) :]))
        return value


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class TrackStatus:
    """Values of ``Track.status``."""

    PENDING = "pending"  # seen, not classified yet (or interrupted)
    DONE = "done"  # classified and recorded (tags written or deliberately not)
    FAILED = "failed"  # could not be read; ``error`` says why
    GONE = "gone"  # the file was deleted


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    root: Mapped[str | None] = mapped_column(FilePath)
    size: Mapped[int | None] = mapped_column(BigInteger)  # files of 2 GiB and more exist
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)  # st_mtime_ns: exact on every engine (a FLOAT is not)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    duration: Mapped[float | None] = mapped_column(Float)
    format: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TrackStatus.PENDING, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    user_genres: Mapped[list[str] | None] = mapped_column(JSON)  # the owner's own genre tags, never ours
    # The genre field as the last scan left it (read, or our write once applied): what the file says after the
    # policy. None: not known (a row from before 0004, or tags never read).
    file_genres: Mapped[list[str] | None] = mapped_column(JSON)
    user_moods: Mapped[list[str] | None] = mapped_column(JSON)  # the owner's own MOOD values, never ours
    file_moods: Mapped[list[str] | None] = mapped_column(JSON)  # the MOOD field as the last scan left it (0005)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    results: Mapped[list[Result]] = relationship(back_populates="track", cascade="all, delete-orphan")
    tag_writes: Mapped[list[TagWrite]] = relationship(back_populates="track", cascade="all, delete-orphan")

    def set_values(self, role: str, values: list[str], owners: bool = False) -> None:
        """The record of a role's field: what the file says (``file_*``), or the owner's own (``user_*``)."""
        if role == "mood":
            if owners:
                self.user_moods = values
            else:
                self.file_moods = values
        elif owners:
            self.user_genres = values
        else:
            self.file_genres = values


class Result(Base):
    """One classification of one track by one model/vocabulary."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(128))
    vocabulary: Mapped[str] = mapped_column(String(64))
    genres: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # top-k: [{label, genre, confidence}]
    chosen: Mapped[list[str]] = mapped_column(JSON)  # what the tags should say (may be empty)
    confident: Mapped[bool] = mapped_column(default=True)
    windows: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"starts": [s], "probabilities": [[p]]}
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float16 bytes, mean over windows
    decided_with: Mapped[str | None] = mapped_column(String(128))  # TagOptions.decided_with; None: unknown (old row)
    # The mood decision: {vocabulary, scores (every label's mean), ranked, chosen, confident, abstained[, valence,
    # arousal]}; None: no moods computed (moods off, no mood head, or a row from before 0005). Stored as SQL NULL
    # (not JSON null) in every case, so a scan that writes moods finds every result lacking them in one query.
    moods: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    track: Mapped[Track] = relationship(back_populates="results")


class TagWriteStatus:
    PENDING = "pending"  # recorded before the file is touched: a crash here is finished next run
    APPLIED = "applied"
    FAILED = "failed"
    RESTORED = "restored"


class TagWrite(Base):
    """A write of one role (genre or mood) into a file, with the value it replaced, so it can be restored."""

    __tablename__ = "tag_writes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(8), default="genre", server_default="genre")  # tagger.tags.Role
    field: Mapped[str] = mapped_column(String(32))  # the native field of that role in this file (TCON, MOOD, ...)
    previous: Mapped[list[str]] = mapped_column(JSON)
    new: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=TagWriteStatus.PENDING, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[datetime | None] = mapped_column()

    track: Mapped[Track] = relationship(back_populates="tag_writes")
    result: Mapped[Result | None] = relationship()


Index("ix_results_track_created", Result.track_id, Result.id)
