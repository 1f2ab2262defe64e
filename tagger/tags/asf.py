"""ASF/WMA storage style. Field: ``WM/Genre``; several genres are several attribute values.

``WM/GenreID`` (a derived genre code that Windows Media Player writes next to ``WM/Genre``)
counts as part of the genre field: it is removed whenever the genre is written, so it can
never contradict the new genre. The ASF data object (the audio packets) is left byte-identical.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mutagen import FileType
from mutagen.asf import ASF

from tagger.tags.base import GenreTags, text_of

GENRE_KEY = "WM/Genre"
GENRE_ID_KEY = "WM/GenreID"


class ASFGenreTags(GenreTags):
    """``WM/Genre`` attributes in the ASF header object."""

    field = GENRE_KEY
    kinds: ClassVar[dict[type[FileType], str]] = {ASF: "wma"}

    def _genres_of(self, audio: FileType) -> list[str]:
        tags = audio.tags
        if tags is None:
            return []
        return [str(value) for key, value in tags if key == GENRE_KEY]

    def _apply(self, audio: FileType, genres: list[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        tags: Any = audio.tags
        for key in (GENRE_KEY, GENRE_ID_KEY):
            if key in tags:
                del tags[key]
        if genres:
            tags[GENRE_KEY] = list(genres)

    def _others_of(self, audio: FileType) -> dict[str, list[str]]:
        tags = audio.tags
        out: dict[str, list[str]] = {}
        if tags is None:
            return out
        for key, value in tags:
            if key not in (GENRE_KEY, GENRE_ID_KEY):
                out.setdefault(key, []).append(f"{type(value).__name__}:{text_of(value.value)}")
        return out
