"""Vorbis-comment storage style: FLAC, Ogg Vorbis and Ogg Opus. Fields: ``GENRE`` and ``MOOD``.

Several values are repeated ``GENRE=`` (``MOOD=``) entries (the Vorbis comment way). Keys are
case-insensitive, so ``genre``/``Genre`` entries count as genre (``mood``/``Mood`` as mood) and
are replaced by ``GENRE`` (``MOOD``) entries, which mutagen appends after the other comments; the
order of the other comments is kept. FLAC pictures, an ID3 tag some tools put in front of a FLAC (byte-identical,
checked on every write; its genre is read as a secondary genre), and the Ogg audio packets are
left as they are (Ogg pages after the comment header may be renumbered by
mutagen when the header grows, which changes page checksums but not a single audio byte).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from mutagen import FileType
from mutagen.flac import FLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from tagger.tags.base import GenreTags, Role, digest
from tagger.tags.secondary import id3v2_prefix

PICTURES_KEY = "<flac pictures>"


class VorbisGenreTags(GenreTags):
    """GENRE and MOOD entries in a Vorbis comment block."""

    fields: ClassVar[dict[Role, str]] = {"genre": "GENRE", "mood": "MOOD"}
    kinds: ClassVar[dict[type[FileType], str]] = {FLAC: "flac", OggVorbis: "ogg", OggOpus: "opus"}

    def _values_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        if tags is None:
            return []
        return [value for key, value in tags if key.upper() == self.fields[role]]

    def _apply(self, audio: FileType, role: Role, values: list[str]) -> None:
        tags: Any = audio.tags
        field = self.fields[role]
        if field in tags:  # case-insensitive; removes genre/Genre/GENRE alike
            del tags[field]
        if values:
            tags[field] = list(values)

    def _save(self, audio: FileType) -> None:
        if isinstance(audio, FLAC):
            audio.save(deleteid3=False)  # an ID3 tag in front of a FLAC is someone else's data
        else:
            audio.save()

    def _kept_blocks(self, path: Path) -> dict[str, bytes]:
        return id3v2_prefix(path) if self._kind is FLAC else {}

    def _others_of(self, audio: FileType, roles: frozenset[Role]) -> dict[str, list[str]]:
        fields = {self.fields[role] for role in roles}
        out: dict[str, list[str]] = {}
        if audio.tags is not None:
            for key, value in audio.tags:
                if key.upper() not in fields:
                    out.setdefault(key.upper(), []).append(value)
        if isinstance(audio, FLAC) and audio.pictures:
            out[PICTURES_KEY] = [
                f"type={pic.type} mime={pic.mime} desc={pic.desc} {pic.width}x{pic.height}x{pic.depth} "
                f"colors={pic.colors} <{len(pic.data)} bytes sha256:{digest(pic.data)}>"
                for pic in audio.pictures
            ]
        return out
