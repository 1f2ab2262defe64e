"""What a path is before anything reads it: which audio files this tool handles, and regular files only;
and the one way a JSON file of ours is written (:func:`write_json_atomically`).

Every command that opens a file the user named or a walk found goes through :func:`regular_stat`
or :func:`open_regular` first, so a FIFO, socket or device is never opened (opening a FIFO blocks
until a writer comes, a device may never end) and is reported with what it is.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from tagger.errors import FileError

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".wav", ".aif", ".aiff", ".wma"}
)
"""Lower-case suffixes of the formats whose genre tags this tool reads and writes (scan, watch, classify)."""

UNSUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".aac", ".ac3", ".ape", ".dff", ".dsf", ".mka", ".mpc", ".ofr", ".spx", ".tak", ".tta", ".webm", ".wv"}
)
"""Audio that ffmpeg may decode but whose tags this tool does not write: reported as unsupported, never tagged."""

_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "folder",
    stat.S_IFLNK: "symbolic link",
}


class NotRegularFileError(FileError):
    """The path is a FIFO, socket, device or folder: nothing is read from it."""


def extension_of(path: str | Path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def is_audio_name(path: str | Path) -> bool:
    """Named like audio, supported or not (a walk reports the unsupported ones instead of ignoring them)."""
    return extension_of(path) in SUPPORTED_EXTENSIONS | UNSUPPORTED_EXTENSIONS


def unsupported_reason(path: str | Path) -> str | None:
    """Why this tool will not tag ``path``, judged by its name; None if it may."""
    extension = extension_of(path)
    return None if extension in SUPPORTED_EXTENSIONS else f"unsupported format ({extension or 'no extension'})"


def special_kind(mode: int) -> str | None:
    """What a non-regular file is ("FIFO", "socket", ...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def not_regular_reason(mode: int) -> str | None:
    kind = special_kind(mode)
    return None if kind is None else f"not a regular file ({kind})"


def regular_stat(path: str | Path) -> os.stat_result:
    """``os.stat`` that refuses anything but a regular file (symlinks followed) with a one-line reason."""
    try:
        st = os.stat(path)
    except OSError as error:
        raise FileError(path, os_reason(error)) from error
    if (reason := not_regular_reason(st.st_mode)) is not None:
        raise NotRegularFileError(path, reason)
    return st


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file, without ever blocking on a FIFO.

    O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a writer), so a path
    swapped for a FIFO after a stat is refused here too; the flag is cleared again for the reads.
    Raises :class:`NotRegularFileError`, or OSError when it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (reason := not_regular_reason(st.st_mode)) is not None:
            raise NotRegularFileError(path, reason)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


OS_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "no such file",
    errno.ENAMETOOLONG: "path too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error",
}
"""Short, table-friendly reasons for the OSErrors met on files (tag writes use the same words)."""


def os_reason(error: OSError) -> str:
    """A short reason for an OSError met while looking at a path (no path, no errno number)."""
    return OS_REASONS.get(error.errno or 0) or (error.strerror or str(error)).lower()


def write_json_atomically(path: Path, data: Any, indent: int = 2) -> None:
    """Readers never see a half-written file: temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=indent, default=str) + "\n")
    os.replace(tmp, path)
