"""MP4/M4A storage style (iTunes ``ilst``). Field: ``©gen``; several genres are several values.

The legacy ``gnre`` atom (an ID3v1 genre number) is turned into ``©gen`` by mutagen when it
reads the file, so after any write the genre lives in ``©gen`` only. The ``mdat`` audio bytes
are never touched; when the metadata grows, mutagen moves atoms and fixes the chunk offset
tables (stco/co64) so the decoded audio stays identical.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mutagen import FileType
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm

from tagger.tags.base import GenreTags, text_of

GENRE_KEY = "\xa9gen"
LEGACY_GENRE_KEY = "gnre"


class MP4GenreTags(GenreTags):
    """``©gen`` values in the ``moov/udta/meta/ilst`` atom."""

    field = GENRE_KEY
    kinds: ClassVar[dict[type[FileType], str]] = {MP4: "m4a"}

    def _genres_of(self, audio: FileType) -> list[str]:
        tags = audio.tags
        if tags is None:
            return []
        return [str(value) for value in tags.get(GENRE_KEY, [])]

    def _apply(self, audio: FileType, genres: list[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        tags: Any = audio.tags
        tags.pop(LEGACY_GENRE_KEY, None)
        tags.pop(GENRE_KEY, None)
        if genres:
            tags[GENRE_KEY] = list(genres)

    def _others_of(self, audio: FileType) -> dict[str, list[str]]:
        tags = audio.tags
        if tags is None:
            return {}
        return {
            key: [_text(value) for value in values]
            for key, values in tags.items()
            if key not in (GENRE_KEY, LEGACY_GENRE_KEY)
        }


def _text(value: object) -> str:
    """MP4 values are str, int, bool, (n, total) tuples, covers or freeform bytes."""
    if isinstance(value, MP4Cover):
        return f"cover:{int(value.imageformat)}:{text_of(bytes(value))}"
    if isinstance(value, MP4FreeForm):
        return f"freeform:{int(value.dataformat)}:{text_of(bytes(value))}"
    return text_of(value)
