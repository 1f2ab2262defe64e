"""Shared fixtures for the tag tests: real files of every format, tagged with mutagen directly.

Also the hand parsers that pull the audio payload out of each container, so tests can prove
that writing a genre leaves the audio bytes alone (the library itself never hand-parses).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.aiff import AIFF
from mutagen.asf import ASF, ASFDWordAttribute
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, TALB, TCON, TIT2, TPE1, TXXX, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tagger.tags.safe_write import TEMP_MARKER
from tests.audio_factory import ALL_EXTENSIONS, have_ffmpeg, make_track

ARTIST = "Ärtist Ñame"
TITLE = "A Title"
ALBUM = "The Album"
COMMENT = "a comment, with ünïcode"
OLD_GENRE = "Pop"
# a tiny but valid PNG (1x1), used as cover art where the format has pictures
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
ID3_EXTENSIONS = (".mp3", ".wav", ".aiff")
FORMAT_OF = {
    ".wav": "wav", ".aiff": "aiff", ".flac": "flac", ".ogg": "ogg", ".opus": "opus",
    ".mp3": "mp3", ".m4a": "m4a", ".wma": "wma",
}  # fmt: skip
FIELD_OF = {
    ".wav": "TCON", ".aiff": "TCON", ".mp3": "TCON", ".flac": "GENRE", ".ogg": "GENRE",
    ".opus": "GENRE", ".m4a": "\xa9gen", ".wma": "WM/Genre",
}  # fmt: skip


@pytest.fixture(scope="session")
def track_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short untagged track per format, generated once per session."""
    if not have_ffmpeg():
        pytest.skip("ffmpeg is needed for .m4a/.wma fixtures")
    folder = tmp_path_factory.mktemp("tracks")
    return {ext: make_track(folder / f"source{ext}", seconds=1.0, stereo=True) for ext in ALL_EXTENSIONS}


@pytest.fixture
def fresh(track_cache: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``fresh(".flac")`` -> a private untagged copy in this test's directory."""

    def copy(ext: str, name: str = "song") -> Path:
        target = tmp_path / f"{name}{ext}"
        shutil.copyfile(track_cache[ext], target)
        return target

    return copy


@pytest.fixture
def tagged(fresh: Callable[[str], Path]) -> Callable[[str], Path]:
    """``tagged(".mp3")`` -> a private copy with artist/title/album/comment/genre (and art) set."""

    def make(ext: str, name: str = "song") -> Path:
        path = fresh(ext, name)
        add_other_tags(path, genre=OLD_GENRE)
        return path

    return make


def add_other_tags(path: Path, genre: str | None = None, id3_version: int = 4) -> None:
    """Tag ``path`` with mutagen directly, the way other programs would have."""
    ext = path.suffix
    if ext in ID3_EXTENSIONS:
        audio = {".mp3": MP3, ".wav": WAVE, ".aiff": AIFF}[ext](path)
        if audio.tags is None:
            audio.add_tags()
        tags = audio.tags
        tags.add(TPE1(encoding=Encoding.UTF16, text=[ARTIST, "Second Artist"]))
        tags.add(TIT2(encoding=Encoding.UTF16, text=[TITLE]))
        tags.add(TALB(encoding=Encoding.LATIN1, text=[ALBUM]))
        tags.add(COMM(encoding=Encoding.UTF16, lang="eng", desc="", text=[COMMENT]))
        tags.add(TXXX(encoding=Encoding.UTF16, desc="custom", text=["x"]))
        tags.add(APIC(encoding=Encoding.UTF16, mime="image/png", type=3, desc="cover", data=PNG))
        if genre:
            tags.add(TCON(encoding=Encoding.LATIN1, text=[genre]))
        audio.save(v2_version=id3_version, v23_sep=None)
    elif ext in (".flac", ".ogg", ".opus"):
        audio = {".flac": FLAC, ".ogg": OggVorbis, ".opus": OggOpus}[ext](path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags["ARTIST"] = [ARTIST, "Second Artist"]
        audio.tags["TITLE"] = TITLE
        audio.tags["ALBUM"] = ALBUM
        audio.tags["COMMENT"] = COMMENT
        if genre:
            audio.tags["genre"] = genre  # lower-case key on purpose: keys are case-insensitive
        if isinstance(audio, FLAC):
            picture = Picture()
            picture.type, picture.mime, picture.desc, picture.data = 3, "image/png", "cover", PNG
            audio.add_picture(picture)
        audio.save()
    elif ext == ".m4a":
        audio = MP4(path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags["\xa9ART"] = [ARTIST, "Second Artist"]
        audio.tags["\xa9nam"] = [TITLE]
        audio.tags["\xa9alb"] = [ALBUM]
        audio.tags["\xa9cmt"] = [COMMENT]
        audio.tags["trkn"] = [(3, 12)]
        audio.tags["covr"] = [MP4Cover(PNG, imageformat=MP4Cover.FORMAT_PNG)]
        audio.tags["----:com.apple.iTunes:CUSTOM"] = [MP4FreeForm(b"custom value")]
        if genre:
            audio.tags["\xa9gen"] = [genre]
        audio.save()
    elif ext == ".wma":
        audio = ASF(path)
        audio.tags["Author"] = [ARTIST, "Second Artist"]
        audio.tags["Title"] = TITLE
        audio.tags["WM/AlbumTitle"] = ALBUM
        audio.tags["Description"] = COMMENT
        audio.tags["WM/TrackNumber"] = [ASFDWordAttribute(3)]
        if genre:
            audio.tags["WM/Genre"] = genre
            audio.tags["WM/GenreID"] = "(13)"
        audio.save()
    else:  # pragma: no cover - guards new extensions in audio_factory
        raise AssertionError(ext)


# ------------------------------------------------------------------------ audio checks


def decode(path: Path) -> np.ndarray:
    """Decoded samples; libsndfile where it can, ffmpeg for AAC and WMA."""
    if path.suffix in (".m4a", ".wma"):
        raw = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        return np.frombuffer(raw, dtype=np.float32)
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    return data


def payload(path: Path) -> bytes:
    """The container's audio bytes (everything that is not metadata), parsed by hand."""
    data = path.read_bytes()
    return {
        ".flac": flac_payload, ".wav": _riff_payload, ".aiff": _aiff_payload, ".mp3": _mp3_payload,
        ".m4a": _mp4_payload, ".wma": _asf_payload, ".ogg": _ogg_payload, ".opus": _ogg_payload,
    }[path.suffix](data)  # fmt: skip


def _skip_id3v2(data: bytes) -> int:
    if not data.startswith(b"ID3"):
        return 0
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def _mp3_payload(data: bytes) -> bytes:
    end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
    frames = data[_skip_id3v2(data) : end]
    assert frames[:1] == b"\xff", "MPEG frames must start right after the ID3v2 tag"
    return frames


def flac_payload(data: bytes) -> bytes:
    pos = _skip_id3v2(data)
    assert data[pos : pos + 4] == b"fLaC"
    pos += 4
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        pos += 4 + length
        if header & 0x80:
            return data[pos:]


def _chunks(data: bytes, start: int, big_endian: bool) -> dict[bytes, bytes]:
    fmt = ">I" if big_endian else "<I"
    out: dict[bytes, bytes] = {}
    pos = start
    while pos + 8 <= len(data):
        name = data[pos : pos + 4]
        (size,) = struct.unpack(fmt, data[pos + 4 : pos + 8])
        out[name] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return out


def _riff_payload(data: bytes) -> bytes:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    chunks = _chunks(data, 12, big_endian=False)
    return chunks[b"fmt "] + chunks[b"data"]


def _aiff_payload(data: bytes) -> bytes:
    assert data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC")
    chunks = _chunks(data, 12, big_endian=True)
    return chunks[b"COMM"] + chunks[b"SSND"]


def _mp4_payload(data: bytes) -> bytes:
    pos, mdat = 0, b""
    while pos + 8 <= len(data):
        size, name = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if name == b"mdat":
            mdat += data[pos + header : pos + size]
        pos += size
    assert mdat, "no mdat atom"
    return mdat


def _asf_payload(data: bytes) -> bytes:
    header_guid = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
    data_guid = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")
    assert data[:16] == header_guid
    (header_size,) = struct.unpack("<Q", data[16:24])
    rest = data[header_size:]
    assert rest[:16] == data_guid, "the data object follows the header object"
    return rest


def _ogg_payload(data: bytes) -> bytes:
    """Audio packets and their granule positions (page numbers/CRCs may change, packets may not)."""
    import io

    fileobj, pages = io.BytesIO(data), []
    while fileobj.tell() < len(data):
        pages.append(OggPage(fileobj))
    packets = OggPage.to_packets(pages)
    headers = 3 if packets[0].startswith(b"\x01vorbis") else 2  # Vorbis: id, comment, setup; Opus: 2
    granules = b"".join(struct.pack("<q", page.position) for page in pages if page.position > 0)
    return b"".join(packets[headers:]) + granules


def no_temp_files(folder: Path) -> bool:
    """True when no ``.tagger-tmp-`` file was left behind."""
    return not [name for name in os.listdir(folder) if TEMP_MARKER in name]


def is_root() -> bool:
    return os.geteuid() == 0


# ------------------------------------------------------------------------ secondary tags, by hand


def id3v1_block(title: str = "", artist: str = "", comment: str = "", genre: int = 255) -> bytes:
    """A raw 128-byte ID3v1.1 block (album "Album", year 1999, track 5)."""

    def field(text: str, width: int) -> bytes:
        return text.encode("latin-1")[:width].ljust(width, b"\x00")

    block = b"TAG" + field(title, 30) + field(artist, 30) + field("Album", 30) + b"1999"
    return block + field(comment, 28) + b"\x00\x05" + bytes([genre])


def tag_plus_block(title: str, genre: str) -> bytes:
    """A raw 227-byte "enhanced" ID3v1 block (``TAG+``), which goes right before ``TAG``."""
    return (
        b"TAG+"
        + title.encode().ljust(60, b"\x00")
        + b"\x00" * 120
        + b"\x01"
        + genre.encode().ljust(30, b"\x00")
        + (b"000:00" * 2)
    )


def syncsafe(value: int) -> bytes:
    return bytes([(value >> 21) & 0x7F, (value >> 14) & 0x7F, (value >> 7) & 0x7F, value & 0x7F])


def raw_frame(frame_id: bytes, body: bytes, version: int, flags: int = 0) -> bytes:
    """One ID3v2.3/2.4 frame as bytes (v2.4 sizes are syncsafe)."""
    size = syncsafe(len(body)) if version == 4 else len(body).to_bytes(4, "big")
    return frame_id + size + flags.to_bytes(2, "big") + body


def raw_id3v2(frames: list[bytes], version: int, flags: int = 0, padding: int = 64) -> bytes:
    """A whole ID3v2 tag made of ``frames`` (already encoded as the tag flags ask)."""
    body = b"".join(frames) + b"\x00" * padding
    return b"ID3" + bytes([version, 0, flags]) + syncsafe(len(body)) + body


def riff_list_info(items: dict[bytes, str]) -> bytes:
    """A RIFF ``LIST``/``INFO`` chunk (what Windows and many rippers write into a WAV)."""
    body = b"INFO"
    for key, text in items.items():
        value = text.encode("latin-1") + b"\x00"
        body += key + len(value).to_bytes(4, "little") + value + b"\x00" * (len(value) & 1)
    return b"LIST" + len(body).to_bytes(4, "little") + body


def append_riff_chunk(path: Path, chunk: bytes) -> None:
    """Append a chunk to a WAV and fix the RIFF size."""
    data = bytearray(path.read_bytes()) + chunk
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def riff_chunk(path: Path, name: bytes) -> bytes:
    """The body of a WAV's top-level chunk ``name`` (parsed by hand)."""
    return _chunks(path.read_bytes(), 12, big_endian=False)[name]


@contextmanager
def unchanged(path: Path) -> Iterator[None]:
    """Assert that ``path`` has the same bytes, inode and mode afterwards, and no temp file is left."""
    before_bytes, before_stat = path.read_bytes(), path.stat()
    yield
    assert path.read_bytes() == before_bytes
    after = path.stat()
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before_stat.st_ino, before_stat.st_mode, before_stat.st_mtime_ns,
    )  # fmt: skip
    assert no_temp_files(path.parent)


def mangled_copies(source: Path, seed: str, count: int) -> Iterator[tuple[Path, bytes]]:
    """``count`` damaged copies of ``source`` beside it, deterministic for ``seed``: truncations, scribbles in the
    first 4 KiB (header, tags) and implausible sizes in the first 2 KiB; each as its path and its bytes."""
    data = source.read_bytes()
    rng = random.Random(seed)
    for i in range(count):
        mangled = bytearray(data)
        if i % 3 == 0:
            mangled = mangled[: rng.randrange(1, len(mangled))]
        elif i % 3 == 1:
            for _ in range(rng.randrange(1, 8)):
                mangled[rng.randrange(0, min(len(mangled), 4096))] = rng.randrange(256)
        else:
            at = rng.randrange(0, min(len(mangled), 2048))
            mangled[at : at + 4] = b"\xff\xff\xff\x7f"
        path = source.with_name(f"mangled{i}{source.suffix}")
        path.write_bytes(bytes(mangled))
        yield path, bytes(mangled)
