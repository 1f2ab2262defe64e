"""The storage-style base class and the one safe way to change a file.

Every tag family (ID3, Vorbis comments, MP4, ASF) is a subclass of :class:`GenreTags` that only
knows how to find, set and list tags in a loaded mutagen object. Everything that touches the
disk lives here, so that the safety rules hold for every format alike:

* The original is never opened for writing (a hard-linked one excepted, see the last point).
  :func:`rewrite_atomically` copies it to a hidden temp file in the same directory
  (``.<name>.tagger-tmp-XXXXXXXX``), mutagen edits the copy,
  the copy is re-read and checked (genre is what we asked for, every other tag is unchanged,
  and every secondary tag the family never writes - ID3v1, APEv2, RIFF INFO, an ID3v2 tag in
  front of a FLAC - is byte-identical),
  synced to disk, given the original's permission bits / owner / extended attributes, and only
  then ``os.replace``-d over the original; the directory is synced afterwards. Any failure
  before the replace removes the temp file and leaves the original untouched.
* A file another process has open for writing (a download stalled on its descriptor) is never
  replaced: a read lease is held from the last size/mtime check through the replace
  (:class:`_NoWriters` says what is guaranteed where leases are not granted). The write is refused
  with :data:`BEING_WRITTEN`, and the scan retries once the file has changed.
* A symlink is written through: the resolved target is replaced and the link itself stays.
  A file that was swapped for another one (new inode) since it was opened is refused, so
  genres computed for one file never land in another.
* A file with no write permission bits at all is refused as "read-only" even for root (for
  whom ``os.access`` always says yes), because chmod a-w is how people protect files.
* A hard-linked file (``st_nlink > 1``) would become a copy if replaced. With ``hardlinks="keep"``
  (the default) the verified temp copy is instead written back into the original inode
  (:func:`write_in_place`), only under a write lease, i.e. while no other process has the file open
  at all, and fsynced; the verified copy is kept under a fixed name (:func:`staged_copy`) until then,
  so a crash midway is finished from it by the next run. Where no write lease is granted the write
  is refused with the reason. ``hardlinks="break"`` replaces the file as any other: other links keep
  the old bytes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, TypeVar

from mutagen import FileType, MutagenError

from tagger.errors import FileError, TagReadError, TagWriteError
from tagger.files import OS_REASONS, open_regular
from tagger.tags.secondary import genres_in

TEMP_MARKER = ".tagger-tmp-"
"""Part of every temp file's name (see :func:`leftover_temps` for the exact pattern)."""

_MAX_REASON = 160
_COPY_CHUNK = 1 << 20
# copy_file_range's answers for "not between these files" (cross-device on old kernels, FUSE, special files)
_COPY_RANGE_REFUSED = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.EPERM})

T = TypeVar("T")


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


# --------------------------------------------------------------------- disk side


def resolve_target(path: Path) -> Path:
    """The regular file ``path`` leads to (symlinks followed), so the link itself is never replaced."""
    try:
        target = Path(os.path.realpath(path, strict=True))
        st = os.stat(target)
    except OSError as exc:
        raise TagWriteError(path, reason_for(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(path, "not a regular file")
    return target


def check_writable(path: Path, target: Path, st: os.stat_result) -> None:
    """Refuse files and directories the user has not allowed us to change."""
    if stat.S_IMODE(st.st_mode) & 0o222 == 0:
        raise TagWriteError(path, "read-only file")
    if not os.access(target, os.W_OK):
        raise TagWriteError(path, "permission denied")
    directory = target.parent
    try:
        dir_st = os.stat(directory)
        read_only_fs = hasattr(os, "statvfs") and bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError as exc:
        raise TagWriteError(path, reason_for(exc)) from exc
    if read_only_fs:
        raise TagWriteError(path, "read-only file system")
    if stat.S_IMODE(dir_st.st_mode) & 0o222 == 0 or not os.access(directory, os.W_OK | os.X_OK):
        raise TagWriteError(path, "directory not writable")


def temp_prefix(name: str) -> str:
    """``.<name>.tagger-tmp-`` shortened so the whole name stays under the 255-byte limit."""
    encoded = name.encode("utf-8", "surrogateescape")[:200]
    return "." + encoded.decode("utf-8", "ignore") + TEMP_MARKER


def leftover_temps(target: Path) -> list[Path]:
    """The temp copies a crashed rewrite of ``target`` can have left: regular files in its folder named
    exactly as :func:`rewrite_atomically` names them (``temp_prefix`` + mkstemp's 8 characters)."""
    pattern = re.compile(re.escape(temp_prefix(target.name)) + r"[a-z0-9_]{8}")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    found = []
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(target.parent / name).st_mode):
                    found.append(target.parent / name)
    return found


def rewrite_atomically(path: Path, target: Path, edit: Callable[[Path], T], keep_hardlinks: bool = False) -> T:
    """Copy ``target``, let ``edit`` change the copy, then swap it in; the original is never edited.

    ``path`` is only used in error messages. Returns what ``edit`` returned. The swap happens only
    while no other process has ``target`` open for writing (see :class:`_NoWriters` for what is
    guaranteed where); otherwise TagWriteError with :data:`BEING_WRITTEN`, the file untouched.
    ``keep_hardlinks``: a file with several links gets the verified copy's bytes written into its
    own inode instead (:func:`write_in_place`), so every link shows the new tags.
    """
    directory = target.parent
    try:
        before = os.stat(target)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), dir=directory)
    except OSError as exc:
        raise TagWriteError(path, f"cannot create temp file: {reason_for(exc)}") from exc
    tmp = Path(tmp_name)
    replaced = False
    try:
        with open(fd, "wb") as dst:
            copy_contents(target, dst)
        result = edit(tmp)
        if keep_hardlinks and before.st_nlink > 1:
            _fsync_path(tmp)
            staged = staged_copy(target)
            os.replace(tmp, staged)  # from here a crash is finished from the staged copy (see recover)
            replaced = True
            _write_staged(path, target, staged, before)
            return result
        _copy_file_metadata(target, tmp, before)
        _fsync_path(tmp)
        with _NoWriters(path, target) as guard:
            now = os.stat(target)
            if _signature(now) != _signature(before) or _signature(guard.stat) != _signature(before):
                raise TagWriteError(path, "file changed on disk while writing")
            guard.check()
            os.replace(tmp, target)
            replaced = True
    except BaseException as exc:
        if not replaced:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, FileError):
            raise
        if isinstance(exc, Exception):
            raise TagWriteError(path, reason_for(exc)) from exc
        raise
    with contextlib.suppress(OSError):  # the new file is in place; a dir that can't fsync is no error
        _fsync_path(directory, directory=True)
    return result


STAGED_MARKER = ".tagger-inplace"
"""Suffix of the verified copy a write in place keeps until the original's bytes are replaced."""


def staged_copy(target: Path) -> Path:
    """The one name the verified copy of ``target`` has while it is written in place (hidden, beside it)."""
    return target.parent / (temp_prefix(target.name).removesuffix(TEMP_MARKER) + STAGED_MARKER)


def _write_staged(path: Path, target: Path, staged: Path, before: os.stat_result | None) -> None:
    """:func:`write_in_place` from ``staged``, then remove it; refused before any byte is written, it goes too."""
    with contextlib.suppress(OSError):
        _fsync_path(target.parent, directory=True)
    try:
        write_in_place(path, target, staged, before)
    except TagWriteError as error:
        if not error.reason.startswith(_INTERRUPTED):
            with contextlib.suppress(OSError):
                staged.unlink()
        raise
    with contextlib.suppress(OSError):
        staged.unlink()
        _fsync_path(target.parent, directory=True)


_INTERRUPTED = "write in place interrupted"


def write_in_place(path: Path, target: Path, source: Path, before: os.stat_result | None = None) -> None:
    """Write ``source``'s bytes into ``target``'s own inode (hard links keep sharing it), then fsync.

    Only under a write lease (Linux ``F_SETLEASE`` ``F_WRLCK``): the kernel grants it only while no
    other descriptor anywhere has the file open, and makes any ``open`` that starts meanwhile wait for
    us; a lease broken before the first byte refuses the write. Where no lease is granted (another
    process has the file open, not the owner without CAP_LEASE, a file system without leases) the
    write is refused, the file untouched. ``before``: how ``target`` looked when it was copied; a
    change since refuses the write.
    """
    try:
        fd = os.open(target, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)  # O_NONBLOCK: never wait on a lease
    except OSError as exc:
        raise TagWriteError(path, reason_for(exc)) from exc
    started = False
    try:
        if before is not None and _signature(os.fstat(fd)) != _signature(before):
            raise TagWriteError(path, "file changed on disk while writing")
        _take_write_lease(path, fd)
        with open(source, "rb") as src:
            if fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_WRLCK:
                raise TagWriteError(path, BEING_WRITTEN)
            started = True
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := src.read(_COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
            os.fsync(fd)
    except OSError as exc:
        if started:  # the staged copy stays: the next run's recovery writes it again
            raise TagWriteError(path, f"{_INTERRUPTED} ({reason_for(exc)}); the next run finishes it") from exc
        raise TagWriteError(path, reason_for(exc)) from exc
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)


def finish_in_place(path: Path, genres: list[str]) -> None:
    """After a crash: a write in place of ``path`` that its staged copy outlived is written again from it
    (the copy was verified and synced before the first byte), unless the file already holds ``genres``."""
    with contextlib.suppress(OSError):
        target = Path(os.path.realpath(path))
        staged = staged_copy(target)
        if not stat.S_ISREG(os.lstat(staged).st_mode):
            return
        from tagger.tags import open_tags  # the package imports this module

        with contextlib.suppress(FileError):
            if open_tags(target).read_genres() == genres:
                staged.unlink()
                return
        with contextlib.suppress(FileError):
            _write_staged(path, target, staged, None)


def _take_write_lease(path: Path, fd: int) -> None:
    why = "this system has no file leases"
    if hasattr(fcntl, "F_SETLEASE"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)  # as in _take_read_lease: a break must not kill us
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
            return
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise TagWriteError(path, f"hard-linked and open in another process ({BEING_WRITTEN})") from exc
            if exc.errno in _NOT_OWNER:
                why = "not the file's owner and no CAP_LEASE"
            elif exc.errno in _NO_LEASES:
                why = "the file system grants no leases"
            else:
                raise
    raise TagWriteError(
        path, f'hard-linked: written in place only under a file lease ({why}); hardlinks = "break" replaces it'
    )


BEING_WRITTEN = "being written by another process; next run retries"
"""Why a write was refused because some process has the file open for writing."""

# F_SETLEASE's answers for "no lease for you here", as opposed to EAGAIN, "someone is writing it":
_NOT_OWNER = frozenset({errno.EACCES, errno.EPERM})  # not the file's owner and no CAP_LEASE
_NO_LEASES = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK})  # NFS, FUSE, leases-enable=0


class _NoWriters:
    """Held from the last size/mtime check through ``os.replace``: no process has the file open for writing.

    On Linux this is a read lease (``F_SETLEASE``, ``F_RDLCK``) on a read-only descriptor: the kernel
    grants it only while no descriptor anywhere on this machine is open for writing (EAGAIN otherwise),
    and an ``open`` for writing that starts while we hold it waits for us and shows as a lease break,
    checked just before the replace. So a download stalled on an open descriptor is never replaced.

    Where no lease is granted (not the file's owner without CAP_LEASE, or a file system that refuses
    leases: NFS, some FUSE), the descriptors in ``/proc`` are searched instead: every process's as
    root, only our own user's otherwise. A writer found refuses the write as with a lease. When we are
    neither the file's owner nor able to see every process, its owner's downloads are invisible, so
    the write is refused with that reason (run as the owner, or grant CAP_LEASE). Writers on other
    machines of a network file system are never visible; there only the size/mtime checks remain.
    """

    def __init__(self, path: Path, target: Path) -> None:
        self.path, self.target = path, target
        self.fd = -1
        self.leased = False

    def __enter__(self) -> _NoWriters:
        self.fd = os.open(self.target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.stat = os.fstat(self.fd)  # the file the lease is on: the caller checks it is still ``target``
            self._exclude_writers(self.stat)
            return self
        except BaseException:
            self._release()
            raise

    def __exit__(self, *_exc: object) -> None:
        self._release()

    def _exclude_writers(self, st: os.stat_result) -> None:
        if not hasattr(fcntl, "F_SETLEASE"):
            self._search_proc(st, "this system has no file leases")
            return
        try:
            _take_read_lease(self.fd)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise TagWriteError(self.path, BEING_WRITTEN) from exc
            if exc.errno in _NOT_OWNER:
                self._search_proc(st, "no lease without owning the file or CAP_LEASE")
            elif exc.errno in _NO_LEASES:
                self._search_proc(st, "the file system grants no leases")
            else:
                raise
            return
        self.leased = True

    def check(self) -> None:
        """Raise if a writer started opening the file while we held the lease."""
        if self.leased and fcntl.fcntl(self.fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK:
            raise TagWriteError(self.path, BEING_WRITTEN)

    def _search_proc(self, st: os.stat_result, why: str) -> None:
        writing, complete = open_for_writing(st)
        if writing:
            raise TagWriteError(self.path, BEING_WRITTEN)
        if not complete and st.st_uid != os.geteuid():
            raise TagWriteError(
                self.path,
                f"cannot tell whether another process is writing it ({why}; its owner's processes are hidden)",
            )

    def _release(self) -> None:
        if self.fd < 0:
            return
        if self.leased:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(self.fd)
        self.fd, self.leased = -1, False


def _take_read_lease(fd: int) -> None:
    """``F_SETLEASE`` ``F_RDLCK`` on ``fd`` (Linux); raises OSError, EAGAIN when a writer has the file open."""
    # A lease break signals its holder, by default with SIGIO, whose default action kills the
    # process; SIGURG is ignored by default, and a break is seen by polling F_GETLEASE instead.
    fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)


def being_written(path: str | Path) -> bool:
    """A cheap early look for the scan, before it decodes anything: True when the kernel refuses a read
    lease because some process has the file open for writing. No guarantee either way (the write
    itself checks again, see :class:`_NoWriters`); False wherever no lease can be tried."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        _take_read_lease(fd)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def open_for_writing(st: os.stat_result, proc: str = "/proc") -> tuple[bool, bool]:
    """Whether a process has the file ``st`` describes open for writing, searched in ``/proc``;
    and whether every process could be searched (another user's are hidden from non-root)."""
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return False, False
    complete = True
    for pid in pids:
        try:
            descriptors = os.listdir(f"{proc}/{pid}/fd")
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            complete = False
            continue
        for descriptor in descriptors:
            try:
                linked = os.stat(f"{proc}/{pid}/fd/{descriptor}")
                if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(f"{proc}/{pid}/fdinfo/{descriptor}") as info:
                    flags = next(line for line in info if line.startswith("flags:")).split()[1]
            except (OSError, StopIteration, IndexError):
                continue
            if int(flags, 8) & os.O_ACCMODE != os.O_RDONLY:
                return True, complete
    return False, complete


def copy_contents(source: Path, destination: BinaryIO) -> None:
    """Copy ``source``'s bytes into the empty, open ``destination``.

    ``copy_file_range`` lets the kernel pick the cheapest copy: a reflink on XFS and btrfs (no data
    copied: ~0.1 ms for a 25 MB FLAC instead of 3-22 ms of CPU, and no second copy written to the
    disk), a server-side copy on NFS 4.2, an in-kernel copy elsewhere. Where it is missing or refused,
    a plain copy. A file that shrinks meanwhile leaves a short copy, which the caller's check of the
    original's size and mtime refuses.
    """
    with open_regular(source) as src:
        size = os.fstat(src.fileno()).st_size
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                while copied < size and (step := os.copy_file_range(src.fileno(), destination.fileno(), size - copied)):
                    copied += step
            except OSError as exc:
                if copied or exc.errno not in _COPY_RANGE_REFUSED:
                    raise
        if copied == 0 and size:  # refused, or a file system that answers 0 for "not supported"
            src.seek(0)
            shutil.copyfileobj(src, destination, _COPY_CHUNK)


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _copy_file_metadata(original: Path, tmp: Path, st: os.stat_result) -> None:
    """Give the copy the original's owner, permission bits and extended attributes (ACLs, labels)."""
    if hasattr(os, "listxattr"):  # Linux: user.* tags, ACLs, security labels
        with contextlib.suppress(OSError):
            for name in os.listxattr(original):
                with contextlib.suppress(OSError):
                    os.setxattr(tmp, name, os.getxattr(original, name))
    mine = os.stat(tmp)
    if _is_root() and (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        os.chown(tmp, st.st_uid, st.st_gid)  # failing refuses the write: no file silently becomes root's
    elif mine.st_gid != st.st_gid:
        with contextlib.suppress(OSError):  # allowed only if we are in that group
            os.chown(tmp, -1, st.st_gid)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))


def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_ERRNO_REASONS = OS_REASONS


def reason_for(exc: BaseException, path: Path | None = None) -> str:
    """A short, table-friendly reason for ``exc`` (mutagen's own message where it has one)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:  # mutagen wraps IOError; look at the whole chain
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for link in chain:
        if isinstance(link, OSError) and link.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[link.errno]
    for link in chain:
        if isinstance(link, MemoryError):
            return "out of memory reading tags"
        if isinstance(link, RecursionError):
            return "tags nested too deeply"
    for link in chain:
        text = str(link).strip()
        if text:
            message = text.splitlines()[0]
            if path is not None:
                message = message.replace(repr(str(path)), "file").replace(str(path), "file")
            if not isinstance(link, MutagenError | OSError):
                message = f"{type(link).__name__}: {message}"
            return message[:_MAX_REASON]
    if any(isinstance(link, OSError) for link in chain):
        return "truncated data (a size field points past the end of the file)"
    return type(exc).__name__
