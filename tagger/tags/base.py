"""The storage-style base class: what every tag family provides, and the checks common to all.

Every tag family (ID3, Vorbis comments, MP4, ASF) is a subclass of :class:`GenreTags` that only
knows how to find, set and list tags in a loaded mutagen object. The tool writes two *roles*,
each one native field per file (:data:`Role`): ``"genre"`` and ``"mood"``; the family says which
field a role is in this file (:meth:`GenreTags.field_name`). :meth:`GenreTags.write` edits a temp
copy through the hooks, the named roles' fields in one rewrite, and proves that only those fields
changed (every other tag, the other role's field included, is unchanged); everything that touches
the disk (the copy, the swap, hard links, other writers) lives in :mod:`tagger.tags.safe_write`, so
that the safety rules hold for every format and role alike. ``read_genres``, ``write_genres``,
``as_stored(genres)`` and ``field`` are the genre role's shorthands.
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
from typing import ClassVar, Literal, get_args

from mutagen import FileType

from tagger.errors import FileError, TagReadError, TagWriteError
from tagger.tags.reasons import reason_for
from tagger.tags.safe_write import check_writable, resolve_target, rewrite_atomically
from tagger.tags.secondary import genres_in

Role = Literal["genre", "mood"]
"""What a field is for: the genres, or the moods (happy, sad, ...) of the track."""

ROLES: tuple[Role, ...] = get_args(Role)


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
    """Genre and mood access for one opened file; subclasses are storage styles, one per tag family.

    The object keeps the tags as read by :func:`tagger.tags.open_tags` (or after the last
    successful write); ``read*`` methods answer from that snapshot, ``write`` re-reads the file
    on disk, so a write never puts back stale values of other tags.
    """

    fields: ClassVar[Mapping[Role, str]]
    """The native field each role is written in, e.g. ``{"genre": "TCON", "mood": "TMOO"}``."""

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

    # ----------------------------------------------------------------- public API, any role

    def field_name(self, role: Role) -> str:
        """The native field ``role`` is written in, in this file (``"TCON"``, ``"TXXX:MOOD"``, ...)."""
        return self._field_of(self._audio, _checked(role))

    def read(self, role: Role) -> list[str]:
        """The values of ``role``'s field ([] if none), as the format stores them."""
        role = _checked(role)
        try:
            return [value for value in self._values_of(self._audio, role) if value]
        except FileError:
            raise
        except Exception as exc:  # odd values in a tag mutagen accepted: still a read error, not a crash
            raise TagReadError(self.path, reason_for(exc)) from exc

    def read_all(self, role: Role) -> list[str]:
        """Every value of ``role`` the file carries: its field's, then those of tags this family reads
        but never writes (genre: ID3v1, APEv2, RIFF INFO, ...; mood: the other ID3 spelling, ...), once each."""
        out = self.read(role)
        seen = {value.casefold() for value in out}
        try:
            more = self._other_spellings_of(self._audio, role)
        except FileError:
            raise
        except Exception as exc:
            raise TagReadError(self.path, reason_for(exc)) from exc
        if role == "genre":
            more += self.read_secondary_genres()
        for value in more:
            if value and value.casefold() not in seen:
                seen.add(value.casefold())
                out.append(value)
        return out

    def as_stored(self, values: list[str], role: Role = "genre") -> list[str]:
        """What ``read(role)`` returns after writing ``values`` there: compare against this.

        Values are stripped and de-duplicated, and an ID3v2.3 tag joins several values into one,
        so the list read back is not always the list written.
        """
        role = _checked(role)
        return self._stored_values(clean_values(self.path, values, role), role)

    def write(self, changes: Mapping[Role, list[str]]) -> None:
        """Replace each named role's field with its values (``[]`` removes it), in one rewrite of the file.

        Only those fields change: every other tag, the field of a role not named included, is proven
        unchanged, and each field written is read back. Nothing named, nothing done. Raises
        TagWriteError (file untouched) when the file cannot or must not be written.
        """
        if isinstance(changes, str | bytes) or not isinstance(changes, Mapping):
            raise TypeError("changes must map roles to lists of values")
        wanted = {_checked(role): clean_values(self.path, values, role) for role, values in changes.items()}
        if not wanted:
            return
        target, current = self._writable_target()
        expected = {role: self._stored_values(values, role) for role, values in wanted.items()}
        if current == self._identity and not self._needs_conversion():
            with contextlib.suppress(FileError):
                if all(self.read(role) == values for role, values in expected.items()):
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

    def read_other_tags(self, besides: Iterable[Role] = ("genre",)) -> dict[str, list[str]]:
        """Every tag but the fields of the roles ``besides``, as text (binary values as a digest).

        For tests and verification: a write of those roles leaves exactly this unchanged.
        """
        roles = frozenset(_checked(role) for role in besides)
        try:
            return self._others_of(self._audio, roles)
        except Exception as exc:
            raise TagReadError(self.path, reason_for(exc)) from exc

    # ----------------------------------------------------------------- the genre role's shorthands

    @property
    def field(self) -> str:
        """The native genre field, e.g. ``"TCON"``."""
        return self.field_name("genre")

    def read_genres(self) -> list[str]:
        """Current genre values ([] if none), as the format stores them."""
        return self.read("genre")

    def read_secondary_genres(self) -> list[str]:
        """Genres in tags this family reads but never writes (ID3v1, APEv2, RIFF INFO, ...), read now."""
        try:
            return genres_in(self._kept_blocks(self.path))
        except OSError as exc:
            raise TagReadError(self.path, reason_for(exc)) from exc

    def read_all_genres(self) -> list[str]:
        """Every genre the file carries: the written field's, then the secondary tags' not already there."""
        return self.read_all("genre")

    def write_genres(self, genres: list[str]) -> None:
        """Replace the genre field with ``genres`` (``[]`` removes it); nothing else changes.

        Raises TagWriteError (file untouched) when the file cannot or must not be written.
        """
        self.write({"genre": genres})

    # ----------------------------------------------------------------- storage style hooks

    @classmethod
    def load(cls, kind: type[FileType], filename: str) -> FileType:
        """Load ``filename`` as ``kind`` the way this family wants it read (e.g. untranslated ID3)."""
        return kind(filename)

    def _field_of(self, audio: FileType, role: Role) -> str:
        """The native field ``role`` is written in, in ``audio`` (some families depend on the tag)."""
        return self.fields[role]

    @abstractmethod
    def _values_of(self, audio: FileType, role: Role) -> list[str]:
        """The values of ``role``'s field in ``audio`` exactly as stored."""

    def _other_spellings_of(self, audio: FileType, role: Role) -> list[str]:
        """Values of ``role`` in ``audio``'s other fields that mean the same and are never written."""
        return []

    def _prepare(self, audio: FileType) -> None:
        """Make ``audio`` ready for ``_apply`` (give it a tag, convert its version); once per write."""
        if audio.tags is None:
            audio.add_tags()

    @abstractmethod
    def _apply(self, audio: FileType, role: Role, values: list[str]) -> None:
        """Set (or with ``[]`` remove) ``role``'s field in the loaded ``audio``; no disk access."""

    @abstractmethod
    def _others_of(self, audio: FileType, roles: frozenset[Role]) -> dict[str, list[str]]:
        """Every tag of ``audio`` but the fields of ``roles``, normalised to text."""

    def _stored_values(self, values: list[str], role: Role) -> list[str]:
        """What ``read(role)`` returns after writing ``values`` (formats may join values)."""
        return list(values)

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

    def _rewrite(self, tmp: Path, wanted: Mapping[Role, list[str]], expected: Mapping[Role, list[str]]) -> FileType:
        """Edit the temp copy and prove that only the named roles' fields changed; returns the re-read copy."""
        audio = self.load(self._kind, str(tmp))
        converting = self._needs_conversion()
        roles = frozenset(wanted)
        kept = self._kept_blocks(tmp)
        before = self._others_of(audio, roles)
        self._prepare(audio)
        for role, values in wanted.items():
            self._apply(audio, role, values)
        planned = self._others_of(audio, roles)
        if not converting and planned != before:
            raise TagWriteError(self.path, f"refusing: other tags would change ({_diff_keys(before, planned)})")
        self._save(audio)
        reread = self.load(self._kind, str(tmp))
        for role, values in expected.items():
            got = [value for value in self._values_of(reread, role) if value]
            if got != values:
                raise TagWriteError(self.path, f"verification failed: wrote {values!r}, read back {got!r}")
        after = self._others_of(reread, roles)
        if after != planned:
            raise TagWriteError(self.path, f"verification failed: other tags changed ({_diff_keys(planned, after)})")
        now = self._kept_blocks(tmp)
        if now != kept:
            changed = sorted(name for name in kept.keys() | now.keys() if kept.get(name) != now.get(name))
            raise TagWriteError(self.path, f"verification failed: {', '.join(changed)} changed")
        return reread


def _checked(role: object) -> Role:
    """``role`` if it is one (a caller's typo must not write some other field)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role  # type: ignore[return-value]


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


def clean_values(path: Path, values: list[str], role: Role = "genre") -> list[str]:
    """Strip, drop empties and duplicates; refuse values no tag format can hold."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TagWriteError(path, f"{role}s must be a list of strings")
    out: list[str] = []
    for item in values:
        if not isinstance(item, str):
            raise TagWriteError(path, f"{role} {item!r} is not a string")
        value = item.strip()
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise TagWriteError(path, f"{role} {value!r} contains a control character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TagWriteError(path, f"{role} {value!r} is not valid Unicode") from None
        if value and value not in out:
            out.append(value)
    return out


def clean_genres(path: Path, genres: list[str]) -> list[str]:
    """:func:`clean_values` for the genre role."""
    return clean_values(path, genres, "genre")


def _diff_keys(a: Mapping[str, list[str]], b: Mapping[str, list[str]]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
    return shown or "order"
