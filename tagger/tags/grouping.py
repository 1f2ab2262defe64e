"""Album, album artist and artist of a file, read (never written) to group tracks for ``tagger learn``.

Tracks of one album, or of one artist, sound alike; cross-validation must keep them on one side
of a split. Only the tags are read (no audio is decoded), with the same content sniffing as
:func:`tagger.tags.open_tags`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tagger.tags import open_tags
from tagger.tags.asf import ASFGenreTags
from tagger.tags.base import GenreTags, text_of
from tagger.tags.id3 import ID3GenreTags
from tagger.tags.mp4 import MP4GenreTags
from tagger.tags.vorbis import VorbisGenreTags

# family -> the native keys of (album, album artist, artist); each key tried in order
_KEYS: dict[type[GenreTags], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    ID3GenreTags: (("TALB",), ("TPE2",), ("TPE1",)),
    VorbisGenreTags: (("ALBUM",), ("ALBUMARTIST", "ALBUM ARTIST"), ("ARTIST",)),  # keys are case-insensitive
    MP4GenreTags: (("\xa9alb",), ("aART",), ("\xa9ART",)),
    ASFGenreTags: (("WM/AlbumTitle",), ("WM/AlbumArtist",), ("Author",)),
}


@dataclass(frozen=True)
class Grouping:
    """What a file says about where it belongs; "" where it says nothing."""

    album: str = ""
    albumartist: str = ""
    artist: str = ""


def read_grouping(path: str | Path) -> Grouping:
    """The file's album, album artist and artist (first value of each, stripped); raises as ``open_tags``."""
    tags = open_tags(path)
    audio_tags = tags._audio.tags  # the snapshot open_tags read; nothing is read again
    if audio_tags is None:
        return Grouping()
    keys = _KEYS[type(tags)]
    return Grouping(*(_first(audio_tags, names) for names in keys))


def _first(audio_tags: object, names: tuple[str, ...]) -> str:
    for name in names:
        try:
            value = audio_tags[name]  # type: ignore[index]
        except (KeyError, ValueError, IndexError):
            continue
        values = getattr(value, "text", value)  # an ID3 frame keeps its values in .text
        for item in values if isinstance(values, list) else [values]:
            text = " ".join(text_of(item).split())
            if text:
                return text
    return ""
