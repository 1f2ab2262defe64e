"""ID3 storage style: MP3 (ID3v2 in front, maybe ID3v1 at the end), WAV and AIFF (an ID3 chunk).

Fields: genre ``TCON``; mood ``TMOO`` in an ID3v2.4 tag, ``TXXX`` with description ``MOOD``
(``TXXX:MOOD``) in an ID3v2.3 tag, which has no TMOO (Mp3tag and foobar2000 do the same; mutagen's
own v2.4 -> v2.3 conversion would drop a TMOO). Tags are loaded with ``translate=False``, so frames
stay as the file has them (a v2.3 ``TYER`` stays ``TYER``, a ``TCON`` of ``"(17)"`` reads back as
``"(17)"``).

The other spelling of the mood (a ``TXXX:MOOD`` in a v2.4 tag, a ``TMOO`` in a v2.3 one, a
``TXXX`` whose description is ``mood`` in another case) is the owner's too: ``read_all("mood")``
adds its values after the version's own field's (``read("mood")``), as players that know both
do; a write replaces only the version's own field and leaves the other spelling as it is.

ID3 version policy (decided so that only the genre changes):

* A file that already has an ID3v2.3 or v2.4 tag keeps that version, whatever ``id3_version``
  says. Converting would rewrite other frames (v2.4 -> v2.3 drops TSOP/TDRL/... and folds
  TDRC into TYER/TDAT/TIME; v2.3 -> v2.4 turns TYER into TDRC), and mutagen drops frames it
  does not know when the version changes.
* ``id3_version`` (3 or 4) is used for new tags (file without ID3v2, ID3v1-only included)
  and for ID3v2.2 tags, which mutagen cannot write: those get converted with mutagen's
  ``update_to_v23/24`` - the one case where other frames' IDs may change (TYE -> TYER/TDRC).
* Several genres (moods) in a v2.3 tag are one TCON (TXXX:MOOD) string joined with
  ``id3_separator`` (v2.3 has no multi-value frames); v2.4 uses real null-separated values. Other frames are saved with
  ``v23_sep=None`` so their existing multiple values are not re-joined.
* MP3 with an ID3v1 tag: it is someone else's tag and is never merged into the ID3v2 tag
  nor regenerated from it. mutagen always rewrites or truncates the v1 block on save, so the
  temp copy gets the original end of the file put back (ID3v1, an "enhanced" ``TAG+`` block,
  an APEv2 tag); the write is refused unless those blocks are byte-identical afterwards.
  WAV/AIFF never read or write ID3v1.
* Frames mutagen cannot decode (a UTF-8-flagged TIT2 holding Latin-1 bytes, bad compressed
  data) would be dropped on load and lost on save; here they are kept as raw "unknown" frames,
  which mutagen writes back verbatim into the same ID3 version. As a check independent of
  mutagen's parsing, the frames of the tag on disk are counted from their headers before and
  after the write; a write that would lose one is refused. That also refuses a tag whose
  duplicate frames mutagen would merge or drop (two ``TPE1``, two ``APIC`` with one
  description), a frame with an invalid ID, and a v2.2 tag with frames that have no v2.3/v2.4
  equivalent.
* APEv2 tags and ID3v1 blocks in an MP3, and every RIFF/AIFF chunk but the audio and the ID3
  chunk (RIFF ``LIST/INFO`` with ``IGNR``), are left byte-identical (checked on every write);
  their genres are read as the file's secondary genres (:mod:`tagger.tags.secondary`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from mutagen import FileType
from mutagen.aiff import AIFF
from mutagen.id3 import (
    TCON,
    TMOO,
    TXXX,
    Encoding,
    Frame,
    Frames,
    Frames_2_2,
    ID3JunkFrameError,
    ID3v1SaveOptions,
    TextFrame,
)
from mutagen.id3._tags import ID3Header, determine_bpi
from mutagen.id3._util import unsynch
from mutagen.mp3 import MP3
from mutagen.wave import WAVE

from tagger.tags.base import GenreTags, Role, repr_digest, text_of
from tagger.tags.secondary import id3v2_end, riff_chunks, trailer_blocks

UNKNOWN_FRAMES_KEY = "<unknown frames>"
FRAMES_ON_DISK_KEY = "number of ID3v2 frames: duplicate or undecodable frames would be merged or lost"
_ID3_CHUNKS = frozenset({b"id3 ", b"ID3 "})
_NOT_KEPT_CHUNKS = _ID3_CHUNKS | {b"data", b"SSND"}  # the tag we write, and the audio (large, moved as is)
_FLAG24_UNSYNCH = 0x0002
_GENRE_FRAME_IDS = frozenset({b"TCON", b"TCO", b"TCO\x00"})  # the last: a v2.2 name in a v2.3 tag
GENRE_FRAME = "TCON"
MOOD_FRAME = "TMOO"  # ID3v2.4 only
MOOD_DESC = "MOOD"
MOOD_TXXX_KEY = f"TXXX:{MOOD_DESC}"  # ID3v2.3's mood: a user-defined text frame
_TXXX_IDS = frozenset({"TXXX", "TXX"})
_FLAGS23_FORMAT = 0x00E0  # v2.3 frame flags that change the body's layout: compression, encryption, grouping
_TAIL_KEPT = 1 << 12  # mutagen touches at most the last 133 bytes (ID3v1) of what follows the ID3v2 tag


def _keeping(frame: type[Frame]) -> type[Frame]:
    """``frame`` under its own name, but data it cannot decode becomes a raw "unknown" frame."""

    def from_data(cls: type[Frame], header: Any, tflags: int, data: bytes) -> Frame:
        try:
            return super(kept, cls)._fromData(header, tflags, data)  # type: ignore[misc]
        except ID3JunkFrameError:
            raise NotImplementedError from None  # read_frames keeps these bytes in unknown_frames

    kept: type[Frame] = type(frame.__name__, (frame,), {"_fromData": classmethod(from_data)})
    return kept


# v2.2 frames stay mutagen's own: their upgrade to v2.3 goes through the class's base
_KEEPING_FRAMES: dict[str, type[Frame]] = {**Frames_2_2, **{name: _keeping(kind) for name, kind in Frames.items()}}


class ID3GenreTags(GenreTags):
    """TCON and TMOO / TXXX:MOOD in an ID3v2 tag, wherever the container keeps it."""

    fields: ClassVar[dict[Role, str]] = {"genre": GENRE_FRAME, "mood": MOOD_FRAME}
    kinds: ClassVar[dict[type[FileType], str]] = {MP3: "mp3", WAVE: "wav", AIFF: "aiff"}

    _pending_version: int = 4

    @classmethod
    def load(cls, kind: type[FileType], filename: str) -> FileType:
        """Untranslated frames, undecodable ones kept raw; ID3v1 is never merged in."""
        audio = kind(filename, translate=False, load_v1=False, known_frames=_KEEPING_FRAMES)
        tags = audio.tags
        if tags is not None and tags.version >= (2, 4, 0) and tags.f_unsynch:
            # mutagen saves without the tag-wide flag; a raw frame's data stays unsynchronised, so say it per frame
            tags.unknown_frames = [_frame_unsynchronised(raw) for raw in tags.unknown_frames]
        return audio

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

    def _field_of(self, audio: FileType, role: Role) -> str:
        if role == "genre":
            return GENRE_FRAME
        return MOOD_FRAME if self._write_version(audio.tags) == 4 else MOOD_TXXX_KEY

    def _stored_values(self, values: list[str], role: Role) -> list[str]:
        if self._write_version(self._audio.tags) == 3 and len(values) > 1:
            return [self.options.id3_separator.join(values)]
        return list(values)

    def _values_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        frame = tags.get(self._field_of(audio, role)) if tags is not None else None
        return [] if frame is None else [str(value) for value in frame.text]

    def _other_spellings_of(self, audio: FileType, role: Role) -> list[str]:
        tags = audio.tags
        if role != "mood" or tags is None:
            return []
        own = self._field_of(audio, role)
        return [
            str(value) for key, frame in tags.items() if key != own and _is_mood_frame(frame) for value in frame.text
        ]

    def _prepare(self, audio: FileType) -> None:
        tags: Any = audio.tags
        version = self._write_version(tags)
        if tags is None:
            audio.add_tags()
            tags = audio.tags
            tags.version = (2, version, 0)  # a new tag says v2.4 until saved, and the mood's field depends on it
        elif tuple(tags.version) < (2, 3, 0):
            tags.unknown_frames = []  # mutagen only writes unknown frames back into the same version
            if version == 3:
                tags.update_to_v23()
            else:
                tags.update_to_v24()
        self._pending_version = version

    def _apply(self, audio: FileType, role: Role, values: list[str]) -> None:
        tags: Any = audio.tags
        version = self._pending_version
        key = GENRE_FRAME if role == "genre" else MOOD_FRAME if version == 4 else MOOD_TXXX_KEY
        tags.delall(key)
        if key != MOOD_TXXX_KEY:  # an undecodable genre (mood) frame, kept raw; a raw TXXX may be anything
            tags.unknown_frames = [raw for raw in tags.unknown_frames if raw[:4] != key.encode()]
        stored = values if version == 4 or len(values) < 2 else [self.options.id3_separator.join(values)]
        if not stored:
            return
        encoding = _encoding_for(stored, version)
        if key == GENRE_FRAME:
            tags.add(TCON(encoding=encoding, text=stored))
        elif key == MOOD_FRAME:
            tags.add(TMOO(encoding=encoding, text=stored))
        else:
            tags.add(TXXX(encoding=encoding, desc=MOOD_DESC, text=stored))

    def _save(self, audio: FileType) -> None:
        if isinstance(audio, MP3):
            with _end_kept(Path(str(audio.filename))):
                audio.save(v1=ID3v1SaveOptions.UPDATE, v2_version=self._pending_version, v23_sep=None)
        else:
            audio.save(v2_version=self._pending_version, v23_sep=None)

    def _kept_blocks(self, path: Path) -> dict[str, bytes]:
        if self._kind is MP3:
            return trailer_blocks(path)
        return riff_chunks(path, big_endian=self._kind is AIFF, keep=lambda name: name not in _NOT_KEPT_CHUNKS)

    def _others_of(self, audio: FileType, roles: frozenset[Role]) -> dict[str, list[str]]:
        tags = audio.tags
        if tags is None:
            return {}
        fields = {self._field_of(audio, role) for role in roles}
        out: dict[str, list[str]] = {}
        for key, frame in tags.items():
            if key in fields:
                continue
            if isinstance(frame, TextFrame):
                out[key] = [str(value) for value in frame.text]
            else:
                out[key] = [f"{frame.pprint()} #{repr_digest(frame)}"]
        raw_ids = {field.encode() for field in fields if ":" not in field}
        unknown = [text_of(raw) for raw in tags.unknown_frames if raw[:4] not in raw_ids]
        if unknown:
            out[UNKNOWN_FRAMES_KEY] = unknown
        on_disk = _frame_count(_raw_tag(type(audio), Path(str(audio.filename))), fields)
        if on_disk:
            out[FRAMES_ON_DISK_KEY] = [str(on_disk)]
        return out


def _is_mood_frame(frame: Frame) -> bool:
    """A TMOO, or a user-defined text frame whose description says mood (in any case)."""
    if frame.FrameID == MOOD_FRAME:
        return True
    return frame.FrameID in _TXXX_IDS and str(getattr(frame, "desc", "")).casefold() == MOOD_DESC.casefold()


@contextmanager
def _end_kept(path: Path) -> Iterator[None]:
    """Put back the bytes after the ID3v2 tag that mutagen's save rewrote (its ID3v1 handling).

    mutagen only inserts or deletes bytes at the front (the ID3v2 tag) and writes or truncates
    the last 133 bytes, so restoring the original last few KiB at the shifted end is exact.
    """
    with open(path, "rb") as handle:
        start = id3v2_end(handle)
        size = handle.seek(0, io.SEEK_END)
        handle.seek(size - min(_TAIL_KEPT, max(0, size - start)))
        tail = handle.read()
    yield
    if size < start:  # a tag claiming to be longer than the file: nothing of the original end to put back
        return
    with open(path, "r+b") as handle:
        end = id3v2_end(handle) + size - start
        handle.seek(end - len(tail))
        handle.write(tail)
        handle.truncate(end)


def _frame_unsynchronised(raw: bytes) -> bytes:
    """A raw v2.4 frame with its own unsynchronisation flag set."""
    flags = int.from_bytes(raw[8:10], "big") | _FLAG24_UNSYNCH
    return raw[:8] + flags.to_bytes(2, "big") + raw[10:]


def _raw_tag(kind: type[FileType], path: Path) -> bytes:
    """The ID3v2 tag's bytes as stored: at the start of an MP3, in the ID3 chunk of WAV/AIFF."""
    if kind is MP3:
        with open(path, "rb") as handle:
            end = id3v2_end(handle)
            handle.seek(0)
            return handle.read(end)
    chunks = riff_chunks(path, big_endian=kind is AIFF, keep=lambda name: name in _ID3_CHUNKS)
    return next((raw[8:] for raw in chunks.values()), b"")


def _frame_count(tag: bytes, fields: set[str]) -> int:
    """Frames in a raw ID3v2 tag but those of ``fields`` (native keys), walked from the frame headers
    the way mutagen walks them.

    Needs no frame to be understood, so a frame mutagen would drop still counts.
    """
    if tag[:3] != b"ID3":
        return 0
    handle = io.BytesIO(tag)
    try:
        header = ID3Header(handle)
    except Exception:  # not a tag mutagen reads at all: it loads as "no tag", nothing to count
        return 0
    data = tag[handle.tell() : header.size]
    version = header.version
    if version < ID3Header._V24 and header.f_unsynch:
        with suppress(ValueError):  # mutagen then reads the bytes as they are; so does this count
            data = unsynch.decode(data)
    wide = version >= ID3Header._V23
    head = 10 if wide else 6
    bpi = determine_bpi(data, Frames) if version >= ID3Header._V24 else int
    skipped = {field.encode() for field in fields if ":" not in field}
    if GENRE_FRAME in fields:
        skipped |= _GENRE_FRAME_IDS
    skip_mood_txxx = MOOD_TXXX_KEY in fields
    count = 0
    while len(data) >= head:
        name = data[:4] if wide else data[:3]
        if not name.strip(b"\x00"):
            break  # padding
        size = bpi(int.from_bytes(data[4:8], "big")) if wide else int.from_bytes(data[3:6], "big")
        ours = name in skipped or (
            skip_mood_txxx and version == ID3Header._V23 and name == b"TXXX" and _is_plain_mood_txxx(data, size)
        )
        if size and not ours:  # mutagen drops empty frames; they hold nothing
            count += 1
        data = data[head + size :]
    return count


def _is_plain_mood_txxx(data: bytes, size: int) -> bool:
    """Whether the v2.3 TXXX frame at the start of ``data`` is a plain (not compressed, encrypted or
    grouped) one with the description ``MOOD``; any other still counts as someone else's frame."""
    if int.from_bytes(data[8:10], "big") & _FLAGS23_FORMAT:
        return False
    body = data[10 : 10 + size]
    if not body:
        return False
    encoding, text = body[0], body[1:]
    try:
        if encoding in (1, 2):  # UTF-16 with BOM / big-endian: the description ends at an aligned double NUL
            end = next((i for i in range(0, len(text) - 1, 2) if text[i : i + 2] == b"\x00\x00"), len(text))
            desc = text[:end].decode("utf-16" if encoding == 1 else "utf-16-be")
        else:
            desc = text.split(b"\x00", 1)[0].decode("utf-8" if encoding == 3 else "latin-1")
    except UnicodeDecodeError:
        return False
    return desc == MOOD_DESC


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
