"""The storage-style base class: what every tag family provides, and the checks common to all.

Every tag family (ID3, Vorbis comments, MP4, ASF) is a subclass of :class:`GenreTags` that only
knows how to find, set and list tags in a loaded mutagen object. :meth:`GenreTags.write_genres`
edits a temp copy through those hooks and proves that only the genre changed; everything that
touches the disk (the copy, the swap, hard links, other writers) lives in
:mod:`tagger.tags.safe_write`, so that the safety rules hold for every format alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mutagen import FileType

from tagger.errors import FileError, TagReadError, TagWriteError
from tagger.tags.reasons import reason_for
from tagger.tags.safe_write import check_writable, resolve_target, rewrite_atomically
from tagger.tags.secondary import genres_in


@dataclass(frozen=True)
class FormatOptions:
    """Per-call choices that only some families use (kept together so every family has one signature)."""

    id3_version: int = 4
    id3_separator: str = "; "
    hardlinks: str = "keep"  # "keep": a hard-linked file is written in place; "break": replaced like any other


@dataclass(frozen=True)
class FileIdentity:
    """Which file a path led to when the tags were read, and how it looked then."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def same_file(self, other: FileIdentity) -> bool:
        """Same inode: the path still leads to the file that was read (maybe edited in place)."""
        return (self.device, self.inode) == (other.device, other.inode)


class GenreTags(ABC):
    """Genre access for one opened file; subclasses are storage styles, one per tag family.

    The object keeps the tags as read by :func:`tagger.tags.open_tags` (or after the last
    successful write); ``read_*`` methods answer from that snapshot, ``write_genres`` re-reads
    the file on disk, so a write never puts back stale values of other tags.
    """

    field: ClassVar[str]
    """The native field name written, e.g. ``"TCON"``."""

    kinds: ClassVar[Mapping[type[FileType], str]]
    """mutagen classes this family handles -> the ``format`` name reported."""

    def __init__(
        self, path: Path, audio: FileType, identity: FileIdentity, options: FormatOptions | None = None
    ) -> None:
        self.path = path
        self.format: str = self.kinds[type(audio)]
        self.options = options or FormatOptions()
        self._kind: type[FileType] = type(audio)
        self._audio = audio
        self._identity = identity

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, format={self.format!r})"

    # ----------------------------------------------------------------- public API

    def read_genres(self) -> list[str]:
        """Current genre values ([] if none), as the format stores them."""
        try:
            return [value for value in self._genres_of(self._audio) if value]
        except Exception as exc:  # odd values in a tag mutagen accepted: still a read error, not a crash
            raise TagReadError(self.path, reason_for(exc)) from exc

    def read_other_tags(self) -> dict[str, list[str]]:
        """Every non-genre tag as text (binary values as a digest), for tests and verification."""
        try:
            return self._others_of(self._audio)
        except Exception as exc:
            raise TagReadError(self.path, reason_for(exc)) from exc

    def read_secondary_genres(self) -> list[str]:
        """Genres in tags this family reads but never writes (ID3v1, APEv2, RIFF INFO, ...), read now."""
        try:
            return genres_in(self._kept_blocks(self.path))
        except OSError as exc:
            raise TagReadError(self.path, reason_for(exc)) from exc

    def read_all_genres(self) -> list[str]:
        """Every genre the file carries: the written field's, then the secondary tags' not already there."""
        out = self.read_genres()
        seen = {genre.casefold() for genre in out}
        for genre in self.read_secondary_genres():
            if genre.casefold() not in seen:
                seen.add(genre.casefold())
                out.append(genre)
        return out

    def as_stored(self, genres: list[str]) -> list[str]:
        """What ``read_genres()`` returns after ``write_genres(genres)``: compare against this.

        Values are stripped and de-duplicated, and an ID3v2.3 tag joins several genres into one
        value, so the list read back is not always the list written.
        """
        return self._stored_values(clean_genres(self.path, genres))

    def write_genres(self, genres: list[str]) -> None:
        """Replace the genre field with ``genres`` (``[]`` removes it); nothing else changes.

        Raises TagWriteError (file untouched) when the file cannot or must not be written.
        """
        wanted = clean_genres(self.path, genres)
        target, current = self._writable_target()
        expected = self._stored_values(wanted)
        if current == self._identity and not self._needs_conversion():
            with contextlib.suppress(FileError):
                if self.read_genres() == expected:
                    return  # nothing would change; don't rewrite the file
        reread = rewrite_atomically(
            self.path,
            target,
            lambda tmp: self._rewrite(tmp, wanted, expected),
            keep_hardlinks=self.options.hardlinks == "keep",
        )
        self._audio = reread
        with contextlib.suppress(OSError):  # if this fails, a later write refuses ("replaced") - safe
            self._identity = FileIdentity.of(os.stat(target))

    # ----------------------------------------------------------------- storage style hooks

    @classmethod
    def load(cls, kind: type[FileType], filename: str) -> FileType:
        """Load ``filename`` as ``kind`` the way this family wants it read (e.g. untranslated ID3)."""
        return kind(filename)

    @abstractmethod
    def _genres_of(self, audio: FileType) -> list[str]:
        """Genre values in ``audio`` exactly as stored."""

    @abstractmethod
    def _apply(self, audio: FileType, genres: list[str]) -> None:
        """Set (or with ``[]`` remove) the genre field in the loaded ``audio``; no disk access."""

    @abstractmethod
    def _others_of(self, audio: FileType) -> dict[str, list[str]]:
        """Every non-genre tag of ``audio``, normalised to text."""

    def _stored_values(self, genres: list[str]) -> list[str]:
        """What ``read_genres`` returns after writing ``genres`` (formats may join values)."""
        return list(genres)

    def _needs_conversion(self) -> bool:
        """True when writing must also change other tags' representation (e.g. ID3v2.2 -> v2.3)."""
        return False

    def _save(self, audio: FileType) -> None:
        """Write ``audio``'s tags back into the file it was loaded from (the temp copy)."""
        audio.save()

    def _kept_blocks(self, path: Path) -> dict[str, bytes]:
        """Raw bytes of the parts of ``path`` a write must leave byte-identical (secondary tags), by name."""
        return {}

    # ----------------------------------------------------------------- internals

    def _writable_target(self) -> tuple[Path, FileIdentity]:
        """The real file to replace, after checking it may be replaced and is still the same file."""
        target = resolve_target(self.path)
        try:
            st = os.stat(target)
        except OSError as exc:
            raise TagWriteError(self.path, reason_for(exc)) from exc
        current = FileIdentity.of(st)
        if not current.same_file(self._identity):
            raise TagWriteError(self.path, "file was replaced since it was opened")
        check_writable(self.path, target, st)
        return target, current

    def _rewrite(self, tmp: Path, wanted: list[str], expected: list[str]) -> FileType:
        """Edit the temp copy and prove that only the genre changed; returns the re-read copy."""
        audio = self.load(self._kind, str(tmp))
        converting = self._needs_conversion()
        kept = self._kept_blocks(tmp)
        before = self._others_of(audio)
        self._apply(audio, wanted)
        planned = self._others_of(audio)
        if not converting and planned != before:
            raise TagWriteError(self.path, f"refusing: other tags would change ({_diff_keys(before, planned)})")
        self._save(audio)
        reread = self.load(self._kind, str(tmp))
        got = [value for value in self._genres_of(reread) if value]
        if got != expected:
            raise TagWriteError(self.path, f"verification failed: wrote {expected!r}, read back {got!r}")
        after = self._others_of(reread)
        if after != planned:
            raise TagWriteError(self.path, f"verification failed: other tags changed ({_diff_keys(planned, after)})")
        now = self._kept_blocks(tmp)
        if now != kept:
            changed = sorted(name for name in kept.keys() | now.keys() if kept.get(name) != now.get(name))
            raise TagWriteError(self.path, f"verification failed: {', '.join(changed)} changed")
        return reread


# --------------------------------------------------------------------- helpers for subclasses


def digest(data: bytes) -> str:
    """Short stable fingerprint of a binary value (pictures, blobs)."""
    return hashlib.sha256(data).hexdigest()[:32]


def text_of(value: object) -> str:
    """Any tag value as text; bytes become ``<N bytes sha256:...>`` so they can be compared cheaply."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return f"<{len(raw)} bytes sha256:{digest(raw)}>"
    if isinstance(value, tuple | list):
        return "/".join(text_of(item) for item in value)
    return str(value)


_ENCODING_RE = re.compile(r"encoding=<Encoding\.\w+: \d+>,? ?")


def repr_digest(obj: object) -> str:
    """Fingerprint of an object's repr, ignoring text-encoding markers (they may legally change)."""
    return digest(_ENCODING_RE.sub("", repr(obj)).encode("utf-8", "surrogatepass"))


def clean_genres(path: Path, genres: list[str]) -> list[str]:
    """Strip, drop empties and duplicates; refuse values no tag format can hold."""
    if isinstance(genres, str | bytes) or not isinstance(genres, Iterable):
        raise TagWriteError(path, "genres must be a list of strings")
    out: list[str] = []
    for genre in genres:
        if not isinstance(genre, str):
            raise TagWriteError(path, f"genre {genre!r} is not a string")
        value = genre.strip()
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise TagWriteError(path, f"genre {value!r} contains a control character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TagWriteError(path, f"genre {value!r} is not valid Unicode") from None
        if value and value not in out:
            out.append(value)
    return out


def _diff_keys(a: Mapping[str, list[str]], b: Mapping[str, list[str]]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
    return shown or "order"
