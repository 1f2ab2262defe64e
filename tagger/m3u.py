"""A playlist's entries and the M3U files made of them: extended M3U (``.m3u8``), one path a line.

An entry is a classified track with the file tags a playlist shows (``#EXTINF:seconds,artist - title``)
or sorts by; :class:`TagCache` reads a file's tags again only when it changed. Entries are paths
relative to the playlist's folder (a server that mounts the library elsewhere still resolves them).

Which files are ours: the line ``#GENRE-TAGGER:by=KIND ...`` right after ``#EXTM3U`` (:func:`ours`).
Writes go to a temp file in the folder, then ``os.replace``; an unchanged file is not rewritten
(servers rescan on mtime).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tagger.album import album_tags
from tagger.errors import FileError
from tagger.tags import open_tags

log = logging.getLogger("tagger.playlists")

MARKER = "#GENRE-TAGGER:"
SUFFIX = ".m3u8"
TEMP_PREFIX = ".genre-tagger-"  # our temp files in the playlists folder: ``.genre-tagger-XXXX.m3u8.tmp``
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')  # not in a file name on the SMB/NTFS shares servers often read
_NUMBER = re.compile(r"^\(?\s*(\d+)")  # "3", "3/12", MP4's "(3, 12)"


@dataclass(frozen=True)
class TrackTags:
    """What a playlist needs of a file's tags; ``None`` where it says nothing."""

    genres: tuple[str, ...] = ()
    artist: str | None = None
    title: str | None = None
    album: str | None = None
    album_artist: str | None = None
    disc: int | None = None
    number: int | None = None
    track_number: str | None = None  # as tagged, for album grouping


# Title and disc keys per family (album, artists and track number: :data:`tagger.album.ALBUM_KEYS`).
_TITLE_KEYS = ("TIT2", "TITLE", "\xa9nam", "Title")
_DISC_KEYS = ("TPOS", "DISCNUMBER", "disk", "WM/PartOfSet")


def _first(others: dict[str, list[str]], keys: Sequence[str]) -> str | None:
    for key in keys:
        for value in others.get(key, []):
            if key in ("Title", "WM/PartOfSet"):  # ASF values come as "Type:value"
                value = value.split(":", 1)[-1]
            if value.strip():
                return " ".join(value.split())
    return None


def _number(text: str | None) -> int | None:
    match = _NUMBER.match(text.strip()) if text else None
    return int(match.group(1)) if match else None


def read_track_tags(path: str | Path) -> TrackTags:
    """The file's genre field and the tags a playlist shows or sorts by; raises as :func:`open_tags`."""
    tags = open_tags(path)
    others = tags.read_other_tags()
    album = album_tags(others)
    return TrackTags(
        genres=tuple(tags.read_genres()),
        artist=album.get("artist"),
        title=_first(others, _TITLE_KEYS),
        album=album.get("album"),
        album_artist=album.get("album_artist"),
        disc=_number(_first(others, _DISC_KEYS)),
        number=_number(album.get("track_number")),
        track_number=album.get("track_number"),
    )


class TagCache:
    """File tags by path, read again only when the file's size or mtime changed: the daemon's refreshes
    read only the files that changed since the last one."""

    def __init__(self) -> None:
        self._tags: dict[str, tuple[tuple[int, int], TrackTags | None]] = {}

    def get(self, path: str) -> TrackTags | None:
        """The file's tags; None when it is missing or its tags cannot be read."""
        try:
            st = os.stat(path)
        except OSError:
            self._tags.pop(path, None)
            return None
        state = (st.st_size, st.st_mtime_ns)
        cached = self._tags.get(path)
        if cached is not None and cached[0] == state:
            return cached[1]
        try:
            tags: TrackTags | None = read_track_tags(path)
        except (FileError, OSError) as error:
            log.debug("playlists: tags of %s not read: %s", path, error)
            tags = None
        self._tags[path] = (state, tags)
        return tags

    def keep_only(self, paths: Iterable[str]) -> None:
        """Forget the files no longer listed (deleted or gone tracks)."""
        wanted = set(paths)
        for path in [p for p in self._tags if p not in wanted]:
            del self._tags[path]


@dataclass(frozen=True)
class Entry:
    """One classified track as a playlist sees it."""

    path: str
    duration: float | None
    tags: TrackTags
    confidences: dict[str, float]  # genre key -> the model's confidence (latest result, canonical names)
    moods: dict[str, float] = field(default_factory=dict)  # the moods the latest result chose -> their confidence

    def heard(self, key: str, min_confidence: float) -> bool:
        """Whether the genre with ``key`` passes ``min_confidence`` (0: always)."""
        return min_confidence <= 0 or self.confidences.get(key, 0.0) >= min_confidence


def _writable(path: str) -> bool:
    """An M3U line holds one UTF-8 path: a name with a newline or bytes that are not UTF-8 cannot be listed."""
    if "\n" in path or "\r" in path:
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def extinf(entry: Entry) -> str:
    """``#EXTINF:seconds,artist - title`` (-1 where the length is unknown; the file name where untitled)."""
    seconds = round(entry.duration) if entry.duration and math.isfinite(entry.duration) else -1
    tags = entry.tags
    shown = Path(entry.path).stem
    if tags.title:
        shown = f"{tags.artist} - {tags.title}" if tags.artist else tags.title
    return f"#EXTINF:{seconds},{' '.join(shown.split())}"


def render_m3u(entries: Sequence[Entry], folder: str | Path, title: str, kind: str) -> str:
    """The playlist's text: ``#EXTM3U``, our marker, ``#PLAYLIST:`` title, then EXTINF + relative path."""
    lines = [
        "#EXTM3U",
        f"{MARKER}by={kind} written by genre-tagger; edits are lost when it writes this file again",
        f"#PLAYLIST:{title}",
    ]
    for entry in entries:
        if _writable(entry.path):
            lines += [extinf(entry), os.path.relpath(entry.path, folder)]
    return "\n".join(lines) + "\n"


def ours(path: Path) -> str | None:
    """The kind (``by=``) of a playlist this tool made, or None for any other file (or a link)."""
    try:
        if not path.is_file() or path.is_symlink():
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = [handle.readline() for _ in range(2)]
    except OSError:
        return None
    if head[0].strip().lstrip("\ufeff") != "#EXTM3U" or not head[1].startswith(MARKER):
        return None
    kind = head[1][len(MARKER) :].split(maxsplit=1)
    return kind[0].removeprefix("by=") if kind and kind[0].startswith("by=") else None


def replace_text(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically (temp file beside it, fsync, ``os.replace``); False if unchanged."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=SUFFIX + ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600: the media server's user must read it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def file_name(title: str) -> str:
    """The playlist file for ``title``: characters a share refuses replaced, within the 255-byte name limit."""
    name = _UNSAFE.sub("_", title).strip(" .") or "_"
    return name.encode("utf-8")[:200].decode("utf-8", "ignore") + SUFFIX  # file names stop at 255 bytes
