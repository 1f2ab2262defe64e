"""Playlists from what the tagger heard: one extended M3U (``.m3u8``) per genre or mood, for media servers.

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
* ``mood``: a track is in the playlist of the mood its latest result chose (``results.moods``; none
  where the mood head abstained), titled ``<mood> (mood)`` so a genre and a mood of one name never
  share a file; ``min_confidence`` applies to the mood's confidence.

Entries (:mod:`tagger.m3u`) are sorted by album, album artist, disc, track number, then path
(tracks without an album tag after the albums, by path).

Only ``.m3u8`` files directly in the folder that carry our marker (:func:`tagger.m3u.ours`) with
the same kind are rewritten or removed (stale: their genre has no track any more); any other file
is never touched, and a playlist of ours whose name a foreign file holds is not written (reported).
The daemon's refresher is :class:`tagger.daemon.playlists.PlaylistRefresher`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from tagger.album import AlbumTrack, album_groups
from tagger.errors import TaggerError
from tagger.genres import GenreRules, genre_key
from tagger.m3u import SUFFIX, TEMP_PREFIX, Entry, TagCache, file_name, ours, render_m3u, replace_text
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.queries import is_latest_result
from tagger.walk import canonical_path

log = logging.getLogger("tagger.playlists")


class PlaylistKind(StrEnum):
    """What ``--by`` groups on; each kind has its grouper in :data:`GROUPERS`."""

    GENRE = "genre"
    ALBUM_GENRE = "album-genre"
    MOOD = "mood"


class PlaylistError(TaggerError):
    """The playlists folder cannot be used (not a folder, not writable): one line."""


def collect(db: Database, rules: GenreRules | None = None, cache: TagCache | None = None) -> list[Entry]:
    """Every classified track whose file is there, with its tags (read now, or from ``cache``)."""
    rules = rules or GenreRules()
    cache = cache or TagCache()
    query = (
        select(Track.path, Track.duration, Result.genres, Result.moods)
        .join(Result, (Result.track_id == Track.id) & is_latest_result())
        .where(Track.status == TrackStatus.DONE)
        .order_by(Track.path)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    entries = []
    for path, duration, ranked, moods in rows:
        tags = cache.get(path)
        if tags is None:
            continue
        confidences: dict[str, float] = {}
        for score in ranked or []:
            key = genre_key(rules.canonical(score["genre"]))
            confidences[key] = max(confidences.get(key, 0.0), float(score["confidence"]))
        entries.append(Entry(path, duration, tags, confidences, _chosen_moods(moods)))
    cache.keep_only(path for path, *_ in rows)
    return entries


def _chosen_moods(moods: dict[str, Any] | None) -> dict[str, float]:
    """The moods a result chose, with their confidence (``results.moods``; None: no moods computed)."""
    if not moods:
        return {}
    confidence = {row["mood"]: float(row["confidence"]) for row in moods.get("ranked", [])}
    return {mood: confidence.get(mood, 0.0) for mood in moods.get("chosen", [])}


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


def by_mood(entries: Sequence[Entry], rules: GenreRules, min_confidence: float) -> Groups:
    """Each track in the playlist of the mood its latest result chose, heard with ``min_confidence``."""
    names = _Names(GenreRules())  # the genre rules name genres, not moods
    keyed: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        for mood, confidence in entry.moods.items():
            key = names.key(mood)
            if key and (min_confidence <= 0 or confidence >= min_confidence):
                keyed[key].append(entry)
    return {names.title(key) + " (mood)": members for key, members in keyed.items()}


GROUPERS: dict[PlaylistKind, Callable[[Sequence[Entry], GenreRules, float], Groups]] = {
    PlaylistKind.GENRE: by_genre,
    PlaylistKind.ALBUM_GENRE: by_album_genre,
    PlaylistKind.MOOD: by_mood,
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
        name = file_name(title)
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
        if path.name.startswith(TEMP_PREFIX) and path.name.endswith(SUFFIX + ".tmp"):
            with contextlib.suppress(OSError):
                path.unlink()  # left by a crash between write and rename
        elif path.suffix == SUFFIX and path.name not in wanted and ours(path) == kind.value:
            path.unlink()
            done.removed.append(path)
    return done
