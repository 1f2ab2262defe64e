"""Tags this tool reads but never writes, found by hand in the raw bytes.

A file can carry the owner's genre outside the field a storage style writes: an ID3v1 block
(and the "enhanced" ``TAG+`` block before it) or an APEv2 tag at the end of an MP3, a RIFF
``LIST/INFO`` chunk (``IGNR``) in a WAV, an ID3v2 tag some tools put in front of a FLAC. Each
is returned as its raw bytes under a name (:data:`ID3V1`, ...), so that a write can prove it
left them byte-identical, and :func:`genres_in` reads the genres they hold, :func:`moods_in` the
moods (an APEv2 ``Mood``, the ``TMOO``/``TXXX:MOOD`` of an ID3v2 tag before a FLAC; ID3v1 and RIFF
INFO have no mood).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, Literal

from mutagen._constants import GENRES
from mutagen.apev2 import APEv2
from mutagen.id3 import ID3

ID3V1 = "ID3v1"
ID3V1_ENHANCED = "ID3v1 enhanced (TAG+)"
APEV2 = "APEv2"
ID3V2_PREFIX = "ID3v2 before the FLAC stream"
CHUNK_PREFIX = "chunk "

_V1_SIZE = 128
_V1_ENHANCED_SIZE = 227
_APE_FOOTER = 32
_APE_HAS_HEADER = 1 << 31
_TRAILER_SCAN = 1 << 26  # an APEv2 tag claiming more than 64 MiB is not believed


def id3v2_end(handle: BinaryIO) -> int:
    """Offset just past an ID3v2 tag at the start of ``handle`` (0 without one)."""
    handle.seek(0)
    header = handle.read(10)
    if len(header) < 10 or header[:3] != b"ID3":
        return 0
    size = 0
    for byte in header[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if header[5] & 0x10 else 0)


def trailer_blocks(path: Path) -> dict[str, bytes]:
    """ID3v1, ``TAG+`` and APEv2 blocks at the end of ``path`` (an MP3), after any ID3v2 tag."""
    out: dict[str, bytes] = {}
    with open(path, "rb") as handle:
        start = id3v2_end(handle)
        end = handle.seek(0, io.SEEK_END)
        if end - _V1_SIZE >= start:
            handle.seek(end - _V1_SIZE)
            block = handle.read(_V1_SIZE)
            if block[:3] == b"TAG":
                out[ID3V1] = block
                end -= _V1_SIZE
                if end - _V1_ENHANCED_SIZE >= start:
                    handle.seek(end - _V1_ENHANCED_SIZE)
                    enhanced = handle.read(_V1_ENHANCED_SIZE)
                    if enhanced[:4] == b"TAG+":
                        out[ID3V1_ENHANCED] = enhanced
                        end -= _V1_ENHANCED_SIZE
        if end - _APE_FOOTER >= start:
            handle.seek(end - _APE_FOOTER)
            footer = handle.read(_APE_FOOTER)
            if footer[:8] == b"APETAGEX":
                size = int.from_bytes(footer[12:16], "little")
                flags = int.from_bytes(footer[20:24], "little")
                length = size + (_APE_FOOTER if flags & _APE_HAS_HEADER else 0)
                if _APE_FOOTER <= size <= _TRAILER_SCAN and end - length >= start:
                    handle.seek(end - length)
                    out[APEV2] = handle.read(length)
                else:  # a size that makes no sense: at least its footer must stay as it is
                    out[APEV2] = footer
    return out


def id3v2_prefix(path: Path) -> dict[str, bytes]:
    """An ID3v2 tag in front of a FLAC stream, raw."""
    with open(path, "rb") as handle:
        end = id3v2_end(handle)
        handle.seek(0)
        return {ID3V2_PREFIX: handle.read(end)} if end else {}


def riff_chunks(path: Path, big_endian: bool, keep: Callable[[bytes], bool]) -> dict[str, bytes]:
    """The top-level chunks of a RIFF (WAV) or FORM (AIFF) file whose name ``keep`` accepts, raw.

    Keys are ``"chunk LIST#0"``: the name and its occurrence, so several LIST chunks stay apart.
    """
    order: Literal["big", "little"] = "big" if big_endian else "little"
    out: dict[str, bytes] = {}
    seen: dict[bytes, int] = {}
    with open(path, "rb") as handle:
        total = handle.seek(0, io.SEEK_END)
        pos = 12
        while pos + 8 <= total:
            handle.seek(pos)
            header = handle.read(8)
            name, size = header[:4], int.from_bytes(header[4:8], order)
            index = seen[name] = seen.get(name, -1) + 1
            if keep(name):
                out[f"{CHUNK_PREFIX}{name.decode('latin-1')}#{index}"] = header + handle.read(size + (size & 1))
            pos += 8 + size + (size & 1)
    return out


def genres_in(blocks: Mapping[str, bytes]) -> list[str]:
    """Genres the blocks hold, in block order; a block that cannot be parsed holds none."""
    return _values_in(blocks, _genres_of_block)


def moods_in(blocks: Mapping[str, bytes]) -> list[str]:
    """Moods the blocks hold, in block order; a block that cannot be parsed holds none."""
    return _values_in(blocks, _moods_of_block)


def _values_in(blocks: Mapping[str, bytes], values_of: Callable[[str, bytes], list[str]]) -> list[str]:
    out: list[str] = []
    for name, raw in blocks.items():
        with contextlib.suppress(Exception):  # someone else's damaged tag: its values are unknown, not an error
            out += values_of(name, raw)
    return [value for value in out if value]


def _genres_of_block(name: str, raw: bytes) -> list[str]:
    if name == ID3V1:
        return [GENRES[raw[127]]] if raw[127] < len(GENRES) else []
    if name == ID3V1_ENHANCED:
        return [_text(raw[185:215])]
    if name == APEV2:
        return _ape_values(raw, "genre")
    if name == ID3V2_PREFIX:
        frame = ID3(io.BytesIO(raw), translate=False, load_v1=False).get("TCON")
        return [] if frame is None else [str(value) for value in frame.text]
    if name.startswith(f"{CHUNK_PREFIX}LIST#") and raw[8:12] == b"INFO":
        return _riff_info_genres(raw[12:])
    return []


def _moods_of_block(name: str, raw: bytes) -> list[str]:
    if name == APEV2:
        return _ape_values(raw, "mood")
    if name == ID3V2_PREFIX:
        tags = ID3(io.BytesIO(raw), translate=False, load_v1=False)
        return [
            str(value)
            for frame in tags.values()
            if frame.FrameID == "TMOO" or (frame.FrameID == "TXXX" and str(frame.desc).casefold() == "mood")
            for value in frame.text
        ]
    return []


def _ape_values(raw: bytes, key: str) -> list[str]:
    """Text values of an APEv2 item, its key matched case-insensitively (APEv2 keys are)."""
    tag = APEv2(io.BytesIO(raw))
    return [str(value) for name in tag if name.lower() == key for value in tag[name]]


def _riff_info_genres(body: bytes) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos + 8 <= len(body):
        key, size = body[pos : pos + 4], int.from_bytes(body[pos + 4 : pos + 8], "little")
        if key == b"IGNR":
            out.append(_text(body[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def _text(raw: bytes) -> str:
    """Fixed-width text: NUL-padded, UTF-8 where it decodes, else Latin-1 (what old taggers wrote)."""
    value = raw.split(b"\x00", 1)[0]
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return value.decode("latin-1").strip()
