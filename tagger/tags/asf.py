"""ASF/WMA storage style. Fields: ``WM/Genre`` and ``WM/Mood``; several values are several attributes.

``WM/GenreID`` (a derived genre code that Windows Media Player writes next to ``WM/Genre``)
counts as part of the genre field: it is removed whenever the genre is written, so it can
never contradict the new genre. A ``WM/Mood`` that is not text (a byte array, a number) cannot be
read as moods: reading it is a TagReadError, and a write of the genre keeps it as it is. The ASF
data object (the audio packets) is left byte-identical.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mutagen import FileType
from mutagen.asf import ASF, ASFUnicodeAttribute

from tagger.errors import TagReadError
from tagger.tags.base import GenreTags, Role, text_of

GENRE_KEY = "WM/Genre"
GENRE_ID_KEY = "WM/GenreID"
MOOD_KEY = "WM/Mood"


class ASFGenreTags(GenreTags):
    """``WM/Genre`` and ``WM/Mood`` attributes in the ASF header object."""

    fields: ClassVar[dict[Role, str]] = {"genre": GENRE_KEY, "mood": MOOD_KEY}
    kinds: ClassVar[dict[type[FileType], str]] = {ASF: "wma"}

    # the keys each role's write replaces
    _KEYS: ClassVar[dict[Role, tuple[str, ...]]] = {"genre": (GENRE_KEY, GENRE_ID_KEY), "mood": (MOOD_KEY,)}

    def _values_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        if tags is None:
            return []
        if role == "genre":
            return [str(value) for key, value in tags if key == GENRE_KEY]
        out = []
        for key, value in tags:
            if key == MOOD_KEY:
                if not isinstance(value, ASFUnicodeAttribute):
                    raise TagReadError(self.path, f"{MOOD_KEY} holds a {type(value).__name__}, not text")
                out.append(str(value))
        return out

    def _apply(self, audio: FileType, role: Role, values: list[str]) -> None:
        tags: Any = audio.tags
        for key in self._KEYS[role]:
            if key in tags:
                del tags[key]
        if values:
            tags[self.fields[role]] = list(values)

    def _others_of(self, audio: FileType, roles: frozenset[Role]) -> dict[str, list[str]]:
        tags = audio.tags
        out: dict[str, list[str]] = {}
        if tags is None:
            return out
        skipped = {key for role in roles for key in self._KEYS[role]}
        for key, value in tags:
            if key not in skipped:
                out.setdefault(key, []).append(f"{type(value).__name__}:{text_of(value.value)}")
        return out
