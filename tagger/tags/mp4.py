"""MP4/M4A storage style (iTunes ``ilst``). Fields: genre ``©gen``, mood the freeform atom
``----:com.apple.iTunes:MOOD`` (UTF-8 text, as iTunes-style taggers write it); several values are
several values.

A MOOD atom whose data is not UTF-8 text (binary, or bytes that do not decode) cannot be read
as moods: reading it is a TagReadError, and a write of the genre keeps it byte for byte. A
freeform mood under another mean or case (``----:com.apple.iTunes:mood``) is the owner's too:
``read_all("mood")`` adds it, a write leaves it alone.

The legacy ``gnre`` atom (an ID3v1 genre number) is turned into ``©gen`` by mutagen when it
reads the file, so after any write the genre lives in ``©gen`` only. The ``mdat`` audio bytes
are never touched; when the metadata grows, mutagen moves atoms and fixes the chunk offset
tables (stco/co64) so the decoded audio stays identical.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mutagen import FileType
from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm

from tagger.errors import TagReadError
from tagger.tags.base import GenreTags, Role, text_of

GENRE_KEY = "\xa9gen"
LEGACY_GENRE_KEY = "gnre"
MOOD_KEY = "----:com.apple.iTunes:MOOD"
_FREEFORM = "----:"


class MP4GenreTags(GenreTags):
    """``©gen`` and the MOOD freeform values in the ``moov/udta/meta/ilst`` atom."""

    fields: ClassVar[dict[Role, str]] = {"genre": GENRE_KEY, "mood": MOOD_KEY}
    kinds: ClassVar[dict[type[FileType], str]] = {MP4: "m4a"}

    # the keys each role's write replaces
    _KEYS: ClassVar[dict[Role, tuple[str, ...]]] = {"genre": (GENRE_KEY, LEGACY_GENRE_KEY), "mood": (MOOD_KEY,)}

    def _values_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        if tags is None:
            return []
        if role == "genre":
            return [str(value) for value in tags.get(GENRE_KEY, [])]
        return [self._freeform_text(MOOD_KEY, value) for value in tags.get(MOOD_KEY, [])]

    def _other_spellings_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        if role != "mood" or tags is None:
            return []
        return [
            self._freeform_text(key, value)
            for key, values in tags.items()
            if key != MOOD_KEY and key.startswith(_FREEFORM) and key.rsplit(":", 1)[-1].casefold() == "mood"
            for value in values
        ]

    def _apply(self, audio: FileType, role: Role, values: list[str]) -> None:
        tags: Any = audio.tags
        for key in self._KEYS[role]:
            tags.pop(key, None)
        if not values:
            return
        if role == "genre":
            tags[GENRE_KEY] = list(values)
        else:
            tags[MOOD_KEY] = [MP4FreeForm(value.encode("utf-8"), dataformat=AtomDataType.UTF8) for value in values]

    def _others_of(self, audio: FileType, roles: frozenset[Role]) -> dict[str, list[str]]:
        tags = audio.tags
        if tags is None:
            return {}
        skipped = {key for role in roles for key in self._KEYS[role]}
        return {key: [_text(value) for value in values] for key, values in tags.items() if key not in skipped}

    def _freeform_text(self, key: str, value: object) -> str:
        """A freeform value as text: UTF-8 (or UTF-16) data; anything else is not a mood we can read."""
        if isinstance(value, MP4FreeForm):
            codec = {AtomDataType.UTF8: "utf-8", AtomDataType.IMPLICIT: "utf-8", AtomDataType.UTF16: "utf-16-be"}
            encoding = codec.get(value.dataformat)
            if encoding is not None:
                try:
                    return bytes(value).decode(encoding)
                except UnicodeDecodeError:
                    pass
        raise TagReadError(self.path, f"{key} holds data that is not text ({_text(value)[:60]})")


def _text(value: object) -> str:
    """MP4 values are str, int, bool, (n, total) tuples, covers or freeform bytes."""
    if isinstance(value, MP4Cover):
        return f"cover:{int(value.imageformat)}:{text_of(bytes(value))}"
    if isinstance(value, MP4FreeForm):
        return f"freeform:{int(value.dataformat)}:{text_of(bytes(value))}"
    return text_of(value)
