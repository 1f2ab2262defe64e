"""Files that are not audio, or whose tags are malformed or huge: one clear error, the file untouched."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen import FileType
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import APIC, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tagger.errors import FileError, TagReadError, TagWriteError, UnsupportedFormatError
from tagger.tags import open_tags
from tests.audio_factory import ALL_EXTENSIONS
from tests.tags.conftest import decode, mangled_copies, no_temp_files, payload, unchanged

Factory = Callable[..., Path]
MUTAGEN_CLASS: dict[str, type[FileType]] = {
    ".mp3": MP3, ".wav": WAVE, ".aiff": AIFF, ".flac": FLAC, ".ogg": OggVorbis, ".opus": OggOpus,
    ".m4a": MP4, ".wma": ASF,
}  # fmt: skip


# ------------------------------------------------------------------------- files that are not audio


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.flac", b"just some text, not a FLAC file\n" * 20),
        ("noise.mp3", random.Random(7).randbytes(30_000)),
        ("noise.wav", random.Random(8).randbytes(30_000)),
        ("noise.m4a", random.Random(9).randbytes(30_000)),
        ("page.ogg", b"<html><body>not audio</body></html>"),
    ],
)
def test_non_audio_is_unsupported(name: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with unchanged(path), pytest.raises(UnsupportedFormatError) as info:
        open_tags(path)
    assert info.value.path == path and info.value.reason


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_empty_file_is_unsupported(ext: str, tmp_path: Path) -> None:
    path = tmp_path / f"empty{ext}"
    path.touch()
    with unchanged(path), pytest.raises(UnsupportedFormatError, match="empty file"):
        open_tags(path)


def test_not_a_regular_file(tmp_path: Path) -> None:
    folder = tmp_path / "album.mp3"
    folder.mkdir()
    fifo = tmp_path / "pipe.flac"
    os.mkfifo(fifo)  # mutagen would block reading this
    for path in (folder, fifo):
        with pytest.raises(UnsupportedFormatError, match="not a regular file"):
            open_tags(path)
    with pytest.raises(TagReadError, match="no such file"):
        open_tags(tmp_path / "missing.ogg")


def test_known_audio_without_genre_support(tmp_path: Path) -> None:
    path = tmp_path / "song.ape"
    path.write_bytes(b"MAC " + b"\x00" * 200)  # Monkey's Audio magic: audio, but not a format we tag
    with pytest.raises(FileError):
        open_tags(path)


# ------------------------------------------------------------------------- malformed and huge tags


def _flac_vorbis_comment_offset(data: bytes) -> int:
    """Offset of the Vorbis comment block's payload in a FLAC file."""
    pos = 4
    while True:
        header, size = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        if header & 0x7F == 4:
            return pos + 4
        assert not header & 0x80, "no vorbis comment block"
        pos += 4 + size


def _flac_huge_vendor(data: bytes) -> bytes:
    at = _flac_vorbis_comment_offset(data)
    return data[:at] + (0x7FFFFFFF).to_bytes(4, "little") + data[at + 4 :]


def _mp4_huge_ilst(data: bytes) -> bytes:
    at = data.index(b"ilst") - 4
    return data[:at] + b"\xff\xff\xff\xf0" + data[at + 4 :]


def _wav_huge_id3_chunk(data: bytes) -> bytes:
    at = data.index(b"id3 ") + 4
    return data[:at] + b"\xff\xff\xff\x7f" + data[at + 4 :]


@pytest.mark.parametrize(
    ("ext", "corrupt", "caught_at"),
    [
        (".mp3", lambda d: d[:6] + b"\x7f\x7f\x7f\x7f" + d[10:], "read"),  # ID3v2 claims 256 MiB
        (".flac", _flac_huge_vendor, "read"),  # a 2 GiB vendor string in a small file
        (".m4a", _mp4_huge_ilst, "read"),  # ilst atom larger than the file
        # mutagen reads these despite the lie, but cannot write them: the write is refused
        (".wma", lambda d: d[:16] + b"\xff" * 8 + d[24:], "write"),  # header object of 2^64 bytes
        (".wav", _wav_huge_id3_chunk, "write"),  # ID3 chunk claims 2 GiB
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_huge_or_lying_tag_sizes(ext: str, corrupt: Callable[[bytes], bytes], caught_at: str, tagged: Factory) -> None:
    path = tagged(ext)
    path.write_bytes(corrupt(path.read_bytes()))
    with unchanged(path):
        if caught_at == "read":
            with pytest.raises(TagReadError) as info:
                open_tags(path)
            assert info.value.reason.startswith("unreadable")
        else:
            tags = open_tags(path)
            with pytest.raises(TagWriteError):
                tags.write_genres(["Rock"])


def test_flac_with_wrong_comment_block_length_is_repaired(tagged: Factory) -> None:
    """Like the reference decoder, mutagen parses the comment itself; a write fixes the length."""
    path = tagged(".flac")
    before_audio, before_payload = decode(path), payload(path)
    data = path.read_bytes()
    at = _flac_vorbis_comment_offset(data)
    path.write_bytes(data[: at - 3] + (0xFFFFFF).to_bytes(3, "big") + data[at:])
    tags = open_tags(path)
    before = tags.read_other_tags()
    tags.write_genres(["Rock"])
    assert open_tags(path).read_other_tags() == before
    assert payload(path) == before_payload
    assert (decode(path) == before_audio).all()  # libsndfile could not even open it before


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_mangled_files_never_crash(ext: str, tagged: Factory) -> None:
    """Deterministic mini-fuzz: truncations and scribbles in the header/tag area.

    Every outcome must be a FileError or success; a refused write leaves the bytes alone.
    """
    source = tagged(ext)
    outcomes: set[str] = set()
    for path, mangled in mangled_copies(source, ext, 24):
        try:
            tags = open_tags(path)
            tags.read_genres()
            tags.read_other_tags()
        except FileError as exc:
            outcomes.add(type(exc).__name__)
            assert path.read_bytes() == mangled
            continue
        try:
            tags.write_genres(["Rock"])
            outcomes.add("written")
        except TagWriteError:
            outcomes.add("refused")
            assert path.read_bytes() == mangled
    assert no_temp_files(source.parent)
    assert "written" in outcomes  # scribbles in audio data must not stop tagging


def test_large_cover_art_survives(tagged: Factory) -> None:
    path = tagged(".mp3")
    audio = MP3(path)
    audio.tags.add(APIC(encoding=Encoding.UTF8, mime="image/jpeg", type=4, desc="back", data=os.urandom(4 << 20)))
    audio.save()
    before_tags, before_payload, before_audio = open_tags(path).read_other_tags(), payload(path), decode(path)
    assert any("4194304 bytes" in v for values in before_tags.values() for v in values)
    open_tags(path).write_genres(["Rock"])
    assert open_tags(path).read_other_tags() == before_tags
    assert payload(path) == before_payload
    assert (decode(path) == before_audio).all()
