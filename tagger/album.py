"""Album consensus: the tracks of one album get one genre, from the mean of their probabilities.

Servers (Navidrome, Jellyfin, Plex) build album pages from their tracks' genres, so an album
tagged 7 x Classical and 3 x Jazz looks broken. Which tracks form an album:

* tracks carrying an ``album`` tag form one with the others of the same album and album artist
  (``albumartist``, else the folder: two folders both named "Greatest Hits" are not one album);
* a folder whose tracks carry no album tag at all is one album only when it looks like one
  release: at least two tracks, all numbered (a track-number tag or a leading number in the
  file name), no number twice, and no two artist tags that differ; a flat folder of unrelated
  files is never one album;
* any other track is on its own (a folder whose tracks disagree is not an album).

This module is pure: it takes what the scan read (tags, probabilities) and returns groups and
the album's probabilities; no file is opened here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FAR_RATIO = 0.5  # a track is "far" when it gives its album's genre under half its own top score
_LEADING_NUMBER = re.compile(r"^\s*(?:\d+[-.])?(\d{1,3})(?!\d)")


@dataclass(frozen=True)
class AlbumTrack:
    """What album consensus needs of one track (tags as read; ``None`` where the file has none)."""

    folder: str
    name: str  # file name
    probabilities: np.ndarray  # (labels,): the track's mean over its windows
    album: str | None = None
    album_artist: str | None = None
    artist: str | None = None
    track_number: str | None = None


@dataclass(frozen=True)
class AlbumDecision:
    """One album: its members (indices into the input), the mean probabilities, the far members."""

    members: tuple[int, ...]
    probabilities: np.ndarray
    far: tuple[int, ...]


# The tag keys each format family stores them under (as :meth:`tagger.tags.base.GenreTags.read_other_tags` names them).
ALBUM_KEYS = {
    "album": ("TALB", "ALBUM", "\xa9alb", "WM/AlbumTitle"),
    "album_artist": ("TPE2", "ALBUMARTIST", "ALBUM ARTIST", "aART", "WM/AlbumArtist"),
    "artist": ("TPE1", "ARTIST", "\xa9ART", "Author"),
    "track_number": ("TRCK", "TRACKNUMBER", "trkn", "WM/TrackNumber"),
}


def album_tags(others: dict[str, list[str]]) -> dict[str, str]:
    """The album fields found among a file's other tags (first value; ASF's ``Type:`` prefix dropped)."""
    found = {}
    for field_name, keys in ALBUM_KEYS.items():
        for key in keys:
            values = [v for v in others.get(key, []) if v.strip()]
            if values:
                value = values[0]
                if key.startswith("WM/") or key == "Author":
                    value = value.split(":", 1)[-1]
                found[field_name] = value
                break
    return found


def _norm(value: str | None) -> str | None:
    text = (value or "").strip().casefold()
    return text or None


def track_number(track: AlbumTrack) -> int | None:
    """The track's number on its release: its tag (``3`` or ``3/12``), else a leading number of the file name."""
    if track.track_number:
        # "3", "3/12", MP4's "(3, 12)"; a number in a vinyl side ("A1") is no track number
        tagged = re.match(r"^\(?\s*(\d+)", track.track_number.strip())
        return int(tagged.group(1)) if tagged else None
    match = _LEADING_NUMBER.match(track.name)
    return int(match.group(1)) if match else None


def looks_like_one_release(tracks: Sequence[AlbumTrack]) -> bool:
    """Untagged tracks of one folder: numbered, no number twice, one artist at most."""
    if len(tracks) < 2:
        return False
    numbers = [track_number(t) for t in tracks]
    if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
        return False
    artists = {_norm(t.artist) for t in tracks} - {None}
    return len(artists) <= 1


def album_groups(tracks: Sequence[AlbumTrack]) -> list[tuple[int, ...]]:
    """Groups of two or more track indices that form one album each (see the module doc)."""
    tagged: dict[tuple[str, str], list[int]] = {}
    folders: dict[str, list[int]] = {}
    for index, track in enumerate(tracks):
        folders.setdefault(track.folder, []).append(index)
        album = _norm(track.album)
        if album is not None:
            tagged.setdefault((album, _norm(track.album_artist) or "folder:" + track.folder), []).append(index)
    groups = [tuple(members) for members in tagged.values() if len(members) >= 2]
    for members in folders.values():
        if all(_norm(tracks[i].album) is None for i in members) and looks_like_one_release(
            [tracks[i] for i in members]
        ):
            groups.append(tuple(members))
    return sorted(groups)


def consensus(tracks: Sequence[AlbumTrack], far_ratio: float = FAR_RATIO) -> list[AlbumDecision]:
    """Each album's mean probabilities, and the members far from its first genre."""
    decisions = []
    for members in album_groups(tracks):
        rows = np.stack([tracks[i].probabilities for i in members])
        mean = rows.mean(axis=0)
        top = int(mean.argmax())
        far = tuple(m for m, row in zip(members, rows, strict=True) if row[top] < far_ratio * row.max())
        decisions.append(AlbumDecision(members, mean, far))
    return decisions


def album_probabilities(tracks: Sequence[AlbumTrack], far_ratio: float = FAR_RATIO) -> list[np.ndarray]:
    """Every track's probabilities after consensus: its album's mean, or its own where it has no album."""
    result = [t.probabilities for t in tracks]
    for decision in consensus(tracks, far_ratio):
        for member in decision.members:
            result[member] = decision.probabilities
    return result
