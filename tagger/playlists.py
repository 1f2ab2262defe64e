"""Playlists from what the tagger heard: one extended M3U (``.m3u8``) per genre, for media servers.

Navidrome, Jellyfin, Plex and mpd import the M3U files they find in the library. Which tracks
go where:

* the classified tracks (latest result per track, :func:`tagger.store.queries.is_latest_result`)
  whose file is there; a track is in the playlist of each genre its genre field holds now, read
  from the file at refresh (what this tool wrote, or the owner's genre it kept, or put back
  with ``restore``), named through ``[genres.map]``;
* ``min_confidence`` keeps a genre only where the model heard it with at least that confidence
  (its latest result): an owner's genre the model does not rank is then left out;
* ``album-genre``: every track of an album (:func:`tagger.album.album_groups`: album + album
  artist tags, or a numbered folder of one release) goes into the one genre most of its tracks
  carry (ties: the higher summed confidence), so albums stay whole; a track on no album is its own.

Entries are paths relative to the playlist's folder (a server that mounts the library elsewhere
still resolves them), sorted by album, album artist, disc, track number, then path (tracks
without an album tag after the albums, by path), each with ``#EXTINF:seconds,artist - title``.

Which files are ours: the line ``#GENRE-TAGGER:by=KIND ...`` right after ``#EXTM3U``. Only
``.m3u8`` files directly in the folder that carry it with the same kind are rewritten or removed
(stale: their genre has no track any more); any other file is never touched, and a playlist of
ours whose name a foreign file holds is not written (reported). Writes go to a temp file in the
folder, then ``os.replace``; an unchanged playlist is not rewritten (servers rescan on mtime).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from sqlalchemy import select

from tagger.album import AlbumTrack, album_groups, album_tags
from tagger.errors import FileError, TaggerError
from tagger.genres import GenreRules, genre_key
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.queries import is_latest_result
from tagger.tags import open_tags
from tagger.walk import canonical_path

log = logging.getLogger("tagger.playlists")

MARKER = "#GENRE-TAGGER:"
SUFFIX = ".m3u8"
_TEMP_PREFIX = ".genre-tagger-"  # our temp files in the playlists folder: ``.genre-tagger-XXXX.m3u8.tmp``
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')  # not in a file name on the SMB/NTFS shares servers often read
_NUMBER = re.compile(r"^\(?\s*(\d+)")  # "3", "3/12", MP4's "(3, 12)"


class PlaylistKind(StrEnum):
    """What ``--by`` groups on. Moods, once the database records them, are one more member here and
    one more grouper in :data:`GROUPERS`."""

    GENRE = "genre"
    ALBUM_GENRE = "album-genre"


class PlaylistError(TaggerError):
    """The playlists folder cannot be used (not a folder, not writable): one line."""


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

    def heard(self, key: str, min_confidence: float) -> bool:
        """Whether the genre with ``key`` passes ``min_confidence`` (0: always)."""
        return min_confidence <= 0 or self.confidences.get(key, 0.0) >= min_confidence


def collect(db: Database, rules: GenreRules | None = None, cache: TagCache | None = None) -> list[Entry]:
    """Every classified track whose file is there, with its tags (read now, or from ``cache``)."""
    rules = rules or GenreRules()
    cache = cache or TagCache()
    query = (
        select(Track.path, Track.duration, Result.genres)
        .join(Result, (Result.track_id == Track.id) & is_latest_result())
        .where(Track.status == TrackStatus.DONE)
        .order_by(Track.path)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    entries = []
    for path, duration, ranked in rows:
        tags = cache.get(path)
        if tags is None:
            continue
        confidences: dict[str, float] = {}
        for score in ranked or []:
            key = genre_key(rules.canonical(score["genre"]))
            confidences[key] = max(confidences.get(key, 0.0), float(score["confidence"]))
        entries.append(Entry(path, duration, tags, confidences))
    cache.keep_only(path for path, _, _ in rows)
    return entries


# ---------------------------------------------------------------------------- grouping
Groups = dict[str, list[Entry]]  # playlist title -> its tracks


class _Names:
    """One title per genre key: the most common spelling among the files (then the first alphabetically)."""

    def __init__(self, rules: GenreRules) -> None:
        self.rules = rules
        self._spellings: dict[str, Counter[str]] = defaultdict(Counter)

    def key(self, genre: str) -> str:
        name = self.rules.canonical(genre.strip())
        key = genre_key(name)
        if key:
            self._spellings[key][name] += 1
        return key

    def title(self, key: str) -> str:
        spellings = self._spellings[key]
        return min(spellings, key=lambda name: (-spellings[name], name))


def by_genre(entries: Sequence[Entry], rules: GenreRules, min_confidence: float) -> Groups:
    """Each track in the playlist of every genre its file carries (and the model heard, see ``min_confidence``)."""
    names = _Names(rules)
    keyed: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        keys = dict.fromkeys(names.key(genre) for genre in entry.tags.genres)  # one genre twice: once
        for key in keys:
            if key and entry.heard(key, min_confidence):
                keyed[key].append(entry)
    return {names.title(key): members for key, members in keyed.items()}


def by_album_genre(entries: Sequence[Entry], rules: GenreRules, min_confidence: float) -> Groups:
    """Whole albums, each in the one genre most of its tracks carry (ties: the higher summed confidence)."""
    names = _Names(rules)
    album_tracks = [
        AlbumTrack(
            folder=os.path.dirname(e.path),
            name=os.path.basename(e.path),
            probabilities=np.zeros(0),  # grouping reads the tags only
            album=e.tags.album,
            album_artist=e.tags.album_artist,
            artist=e.tags.artist,
            track_number=e.tags.track_number,
        )
        for e in entries
    ]
    grouped = album_groups(album_tracks)
    on_album = {member for members in grouped for member in members}
    albums = [list(members) for members in grouped] + [[i] for i in range(len(entries)) if i not in on_album]
    keyed: dict[str, list[Entry]] = defaultdict(list)
    for members in albums:
        votes: Counter[str] = Counter()
        weight: dict[str, float] = defaultdict(float)
        for i in members:
            entry = entries[i]
            for key in dict.fromkeys(names.key(genre) for genre in entry.tags.genres):
                if key and entry.heard(key, min_confidence):
                    votes[key] += 1
                    weight[key] += entry.confidences.get(key, 0.0)
        if votes:
            best = min(votes, key=lambda key: (-votes[key], -weight[key], key))
            keyed[best].extend(entries[i] for i in members)
    return {names.title(key) + " (albums)": members for key, members in keyed.items()}


GROUPERS: dict[PlaylistKind, Callable[[Sequence[Entry], GenreRules, float], Groups]] = {
    PlaylistKind.GENRE: by_genre,
    PlaylistKind.ALBUM_GENRE: by_album_genre,
}


def playlist_order(entry: Entry) -> tuple[bool, str, str, int, int, str]:
    """Album, album artist, disc, track number, then path; tracks without an album tag last, by path."""
    tags = entry.tags
    return (
        tags.album is None,
        (tags.album or "").casefold(),
        (tags.album_artist or tags.artist or "").casefold(),
        tags.disc or 0,
        tags.number or 0,
        entry.path,
    )


# ---------------------------------------------------------------------------- M3U
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX, suffix=SUFFIX + ".tmp")
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


def _file_name(title: str) -> str:
    name = _UNSAFE.sub("_", title).strip(" .") or "_"
    return name.encode("utf-8")[:200].decode("utf-8", "ignore") + SUFFIX  # file names stop at 255 bytes


@dataclass
class PlaylistsWritten:
    """What :func:`write_playlists` did."""

    folder: Path
    written: list[Path] = field(default_factory=list)  # new or changed
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # ours, no track any more
    refused: list[Path] = field(default_factory=list)  # the name is a file we did not make: left alone
    tracks: int = 0  # classified tracks whose file was there

    def to_dict(self) -> dict[str, object]:
        names = {k: [p.name for p in getattr(self, k)] for k in ("written", "unchanged", "removed", "refused")}
        return {"folder": str(self.folder), "tracks": self.tracks, **names}


def write_playlists(
    db: Database,
    folder: str | Path,
    kind: PlaylistKind = PlaylistKind.GENRE,
    min_confidence: float = 0.0,
    rules: GenreRules | None = None,
    cache: TagCache | None = None,
) -> PlaylistsWritten:
    """Bring the ``kind`` playlists in ``folder`` up to date with the database (see the module doc)."""
    rules = rules or GenreRules()
    out = canonical_path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PlaylistError(f"playlists folder {out}: {error.strerror or error}") from error
    if not os.access(out, os.W_OK | os.X_OK):
        raise PlaylistError(f"playlists folder {out}: not writable")
    entries = collect(db, rules, cache)
    done = PlaylistsWritten(out, tracks=len(entries))
    wanted: dict[str, tuple[str, list[Entry]]] = {}
    for title, members in sorted(GROUPERS[kind](entries, rules, min_confidence).items()):
        name = _file_name(title)
        base, n = name, 2
        while name.casefold() in (w.casefold() for w in wanted):  # a case-insensitive share holds one of them
            name = f"{base.removesuffix(SUFFIX)} ({n}){SUFFIX}"
            n += 1
        wanted[name] = (title, sorted(members, key=playlist_order))
    for name, (title, members) in wanted.items():
        path = out / name
        if (path.exists() or path.is_symlink()) and ours(path) != kind.value:
            done.refused.append(path)
            log.warning("playlists: %s was not made by this tool (or by another --by): left alone", path)
            continue
        (done.written if replace_text(path, render_m3u(members, out, title, kind.value)) else done.unchanged).append(
            path
        )
    for path in sorted(out.iterdir()):
        if path.name.startswith(_TEMP_PREFIX) and path.name.endswith(SUFFIX + ".tmp"):
            with contextlib.suppress(OSError):
                path.unlink()  # left by a crash between write and rename
        elif path.suffix == SUFFIX and path.name not in wanted and ours(path) == kind.value:
            path.unlink()
            done.removed.append(path)
    return done


class PlaylistRefresher:
    """The daemon's hook: changes are noted as tracks are recorded; the playlists are rewritten at most
    once per ``interval`` seconds, and only after a change (a burst of 200 new tracks is one rewrite, not
    200). The first call writes them as the database has them. A refresh runs in its own thread, one at a
    time: the first one reads every file's tags (minutes for 100k files) and must not hold up tagging;
    file tags are cached between refreshes. A refresh cut short by the process ending leaves the previous
    playlists (each file is replaced atomically)."""

    def __init__(
        self,
        db: Database,
        folder: str | Path,
        kind: PlaylistKind = PlaylistKind.GENRE,
        min_confidence: float = 0.0,
        rules: GenreRules | None = None,
        interval: float = 30.0,
    ) -> None:
        self.db, self.folder, self.kind = db, Path(folder), kind
        self.min_confidence, self.rules, self.interval = min_confidence, rules or GenreRules(), interval
        self.cache = TagCache()
        self.refreshes = 0  # finished ones
        self._changed = True
        self._last = -math.inf
        self._thread: threading.Thread | None = None

    def note_change(self) -> None:
        """A track was recorded, moved or marked gone."""
        self._changed = True

    def maybe_refresh(self, now: float) -> bool:
        """Start a refresh if something changed, none is running and the last one started ``interval``
        seconds ago (``now``: :func:`time.monotonic`). A failed one is logged and retried after ``interval``."""
        if (self._thread is not None and self._thread.is_alive()) or not self._changed:
            return False
        if now - self._last < self.interval:
            return False
        self._changed, self._last = False, now
        self._thread = threading.Thread(target=self._refresh, name="playlists", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Until the refresh in progress, if any, has finished."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _refresh(self) -> None:
        try:
            done = write_playlists(self.db, self.folder, self.kind, self.min_confidence, self.rules, self.cache)
        except (TaggerError, OSError) as error:  # a database or folder problem: the next change tries again
            self._changed = True
            log.error("playlists not refreshed: %s", error)
            return
        self.refreshes += 1
        if done.written or done.removed:
            log.info(
                "playlists in %s: %d written, %d removed, %d unchanged",
                done.folder,
                len(done.written),
                len(done.removed),
                len(done.unchanged),
            )
