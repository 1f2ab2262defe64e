"""ID3 storage style: MP3 (ID3v2 in front, maybe ID3v1 at the end), WAV and AIFF (an ID3 chunk).

Field: ``TCON``. Tags are loaded with ``translate=False``, so frames stay as the file has
them (a v2.3 ``TYER`` stays ``TYER``, a ``TCON`` of ``"(17)"`` reads back as ``"(17)"``).

ID3 version policy (decided so that only the genre changes):

* A file that already has an ID3v2.3 or v2.4 tag keeps that version, whatever ``id3_version``
  says. Converting would rewrite other frames (v2.4 -> v2.3 drops TSOP/TDRL/... and folds
  TDRC into TYER/TDAT/TIME; v2.3 -> v2.4 turns TYER into TDRC), and mutagen drops frames it
  does not know when the version changes.
* ``id3_version`` (3 or 4) is used for new tags (file without ID3v2), for ID3v1-only files
  and for ID3v2.2 tags, which mutagen cannot write: those get converted with mutagen's
  ``update_to_v23/24`` - the one case where other frames' IDs may change (TYE -> TYER/TDRC).
* Several genres in a v2.3 tag are one TCON string joined with ``id3_separator`` (v2.3 has
  no multi-value frames); v2.4 uses real null-separated values. Other frames are saved with
  ``v23_sep=None`` so their existing multiple values are not re-joined.
* MP3 with an ID3v1 tag: mutagen merges v1 fields into the tag on load and regenerates the
  v1 block from them on save (``v1=UPDATE``: kept, never added), so its title/artist/... keep
  their values; its genre byte follows the first genre (255 if not a standard ID3v1 genre).
  WAV/AIFF never read or write ID3v1.
* APEv2 tags and RIFF INFO chunks (IGNR) are left byte-identical and are not read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mutagen import FileType
from mutagen.aiff import AIFF
from mutagen.id3 import TCON, Encoding, ID3v1SaveOptions, TextFrame
from mutagen.mp3 import MP3
from mutagen.wave import WAVE

from tagger.tags.base import GenreTags, repr_digest, text_of

UNKNOWN_FRAMES_KEY = "<unknown frames>"


class ID3GenreTags(GenreTags):
    """TCON in an ID3v2 tag, wherever the container keeps it."""

    field = "TCON"
    kinds: ClassVar[dict[type[FileType], str]] = {MP3: "mp3", WAVE: "wav", AIFF: "aiff"}

    _pending_version: int = 4

    @classmethod
    def load(cls, kind: type[FileType], filename: str) -> FileType:
        """Untranslated frames; ID3v1 only where it exists (MP3)."""
        if kind is MP3:
            return MP3(filename, translate=False)
        return kind(filename, translate=False, load_v1=False)

    @property
    def id3_version(self) -> int | None:
        """Minor version of the file's ID3v2 tag (3 or 4; 2 for v2.2), None without one."""
        tags = self._audio.tags
        if tags is None or tags.version[0] != 2:
            return None
        return int(tags.version[1])

    def _write_version(self, tags: Any) -> int:
        """Keep v2.3/v2.4 as found; anything else gets the requested version."""
        if tags is not None and tuple(tags.version[:2]) in ((2, 3), (2, 4)):
            return int(tags.version[1])
        return self.options.id3_version

    def _needs_conversion(self) -> bool:
        tags = self._audio.tags
        return tags is not None and tuple(tags.version) < (2, 3, 0)

    def _stored_values(self, genres: list[str]) -> list[str]:
        if self._write_version(self._audio.tags) == 3 and len(genres) > 1:
            return [self.options.id3_separator.join(genres)]
        return list(genres)

    def _genres_of(self, audio: FileType) -> list[str]:
        tags = audio.tags
        frame = tags.get("TCON") if tags is not None else None
        return [] if frame is None else [str(value) for value in frame.text]

    def _apply(self, audio: FileType, genres: list[str]) -> None:
        tags: Any = audio.tags
        version = self._write_version(tags)
        if tags is None:
            audio.add_tags()
            tags = audio.tags
        elif tuple(tags.version) < (2, 3, 0):
            tags.unknown_frames = []  # mutagen only writes unknown frames back into the same version
            if version == 3:
                tags.update_to_v23()
            else:
                tags.update_to_v24()
        self._pending_version = version
        tags.delall("TCON")
        values = genres if version == 4 or len(genres) < 2 else [self.options.id3_separator.join(genres)]
        if values:
            tags.add(TCON(encoding=_encoding_for(values, version), text=values))

    def _save(self, audio: FileType) -> None:
        if isinstance(audio, MP3):
            audio.save(v1=ID3v1SaveOptions.UPDATE, v2_version=self._pending_version, v23_sep=None)
        else:
            audio.save(v2_version=self._pending_version, v23_sep=None)

    def _others_of(self, audio: FileType) -> dict[str, list[str]]:
        tags = audio.tags
        if tags is None:
            return {}
        out: dict[str, list[str]] = {}
        for key, frame in tags.items():
            if frame.FrameID == "TCON":
                continue
            if isinstance(frame, TextFrame):
                out[key] = [str(value) for value in frame.text]
            else:
                out[key] = [f"{frame.pprint()} #{repr_digest(frame)}"]
        if tags.unknown_frames:
            out[UNKNOWN_FRAMES_KEY] = [text_of(raw) for raw in tags.unknown_frames]
        return out


def _encoding_for(values: list[str], version: int) -> int:
    """UTF-8 in v2.4; Latin-1 when it fits in v2.3 (old players), else UTF-16."""
    if version == 4:
        return Encoding.UTF8
    try:
        for value in values:
            value.encode("latin-1")
    except UnicodeEncodeError:
        return Encoding.UTF16
    return Encoding.LATIN1
