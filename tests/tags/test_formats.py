"""Every format: write, read back, overwrite, remove; other tags and the audio stay identical."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TDRC, TSOP, TYER, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tagger.tags import SUPPORTED_EXTENSIONS, ID3GenreTags, open_tags
from tests.audio_factory import ALL_EXTENSIONS
from tests.tags.conftest import (
    ALBUM,
    ARTIST,
    COMMENT,
    FIELD_OF,
    FORMAT_OF,
    ID3_EXTENSIONS,
    OLD_GENRE,
    TITLE,
    add_other_tags,
    decode,
    flac_payload,
    no_temp_files,
    payload,
)

Factory = Callable[..., Path]
MUTAGEN_CLASS = {
    ".mp3": MP3, ".wav": WAVE, ".aiff": AIFF, ".flac": FLAC, ".ogg": OggVorbis, ".opus": OggOpus,
    ".m4a": MP4, ".wma": ASF,
}  # fmt: skip


def native_genre_entries(path: Path) -> list[tuple[str, str]]:
    """(native key, value) pairs of the genre field, read with plain mutagen, not our module."""
    ext = path.suffix
    kind = MUTAGEN_CLASS[ext]
    if ext in ID3_EXTENSIONS:
        tags = kind(path, translate=False).tags
        return [] if tags is None else [(frame.FrameID, v) for frame in tags.getall("TCON") for v in frame.text]
    tags = kind(path).tags
    if tags is None:
        return []
    if ext in (".flac", ".ogg", ".opus"):
        return [(k, v) for k, v in tags if k.lower() == "genre"]
    if ext == ".m4a":
        return [(k, str(v)) for k, values in tags.items() if k in ("\xa9gen", "gnre") for v in values]
    return [(k, str(v)) for k, v in tags if k in ("WM/Genre", "WM/GenreID")]


def ffprobe_genre(path: Path) -> str | None:
    """The genre another program (ffmpeg) sees, to prove the tag is where players look."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    info = json.loads(out)
    for section in [info.get("format", {}), *info.get("streams", [])]:
        for key, value in section.get("tags", {}).items():
            if key.lower() == "genre":
                return str(value)
    return None


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_identifies_format_and_field(ext: str, fresh: Factory) -> None:
    tags = open_tags(fresh(ext))
    assert tags.format == FORMAT_OF[ext]
    assert tags.field == FIELD_OF[ext]
    assert tags.path.suffix == ext
    assert tags.read_genres() == []
    assert ext in SUPPORTED_EXTENSIONS


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_single_genre_round_trip(ext: str, fresh: Factory) -> None:
    path = fresh(ext)
    tags = open_tags(path)
    tags.write_genres(["Rock"])
    assert tags.read_genres() == ["Rock"]
    assert open_tags(path).read_genres() == ["Rock"]
    assert native_genre_entries(path) == [(FIELD_OF[ext], "Rock")]
    assert ffprobe_genre(path) == "Rock"
    assert no_temp_files(path.parent)


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_multiple_genres_are_separate_values(ext: str, fresh: Factory) -> None:
    path = fresh(ext)
    genres = ["Rock", "Electronic", "Jazz"]
    open_tags(path).write_genres(genres)
    assert open_tags(path).read_genres() == genres
    assert native_genre_entries(path) == [(FIELD_OF[ext], g) for g in genres]
    seen = ffprobe_genre(path)
    assert seen is not None and seen.startswith("Rock")


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_overwrites_existing_genre(ext: str, tagged: Factory) -> None:
    path = tagged(ext)
    tags = open_tags(path)
    assert tags.read_genres() == [OLD_GENRE]
    tags.write_genres(["Techno", "House"])
    assert open_tags(path).read_genres() == ["Techno", "House"]
    entries = native_genre_entries(path)
    assert OLD_GENRE not in [value for _, value in entries]
    assert {key for key, _ in entries} == {FIELD_OF[ext]}  # genre/GENRE/gnre/WM/GenreID all folded


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_remove_genre(ext: str, tagged: Factory) -> None:
    path = tagged(ext)
    tags = open_tags(path)
    tags.write_genres([])
    assert tags.read_genres() == []
    assert open_tags(path).read_genres() == []
    assert native_genre_entries(path) == []
    assert ffprobe_genre(path) is None
    assert open_tags(path).read_other_tags()  # the other tags did not go with it


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_only_genre_changes(ext: str, tagged: Factory) -> None:
    path = tagged(ext)
    before_tags = open_tags(path).read_other_tags()
    before_audio, before_payload = decode(path), payload(path)
    flat = " ".join(v for values in before_tags.values() for v in values)
    for value in (ARTIST, TITLE, ALBUM, COMMENT):  # the fixture really has the tags we protect
        assert value in flat
    assert len(before_audio) > 0

    for genres in (["Rock", "Electronic"], [("A much longer genre name " * 40).strip()], []):
        open_tags(path).write_genres(genres)
        after = open_tags(path)
        assert after.read_genres() == genres
        assert after.read_other_tags() == before_tags
        assert payload(path) == before_payload
        assert np.array_equal(decode(path), before_audio)
    assert no_temp_files(path.parent)


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_untagged_file_gets_tag_and_keeps_audio(ext: str, fresh: Factory) -> None:
    path = fresh(ext)
    before_audio, before_payload = decode(path), payload(path)
    before_tags = open_tags(path).read_other_tags()
    open_tags(path).write_genres(["Ambient"])
    assert payload(path) == before_payload
    assert np.array_equal(decode(path), before_audio)
    assert open_tags(path).read_other_tags() == before_tags


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_same_genres_do_not_rewrite(ext: str, fresh: Factory) -> None:
    path = fresh(ext)
    tags = open_tags(path)
    tags.write_genres(["Rock"])
    inode = path.stat().st_ino
    tags.write_genres(["Rock", " Rock ", ""])  # cleaned to ["Rock"]: nothing to do
    assert path.stat().st_ino == inode
    tags.write_genres(["Jazz"])
    assert path.stat().st_ino != inode  # a real change is a new file swapped in
    assert open_tags(path).read_genres() == ["Jazz"]


def test_content_decides_format_not_extension(track_cache: dict[str, Path], tmp_path: Path) -> None:
    disguised = tmp_path / "really-flac.mp3"
    shutil.copyfile(track_cache[".flac"], disguised)
    before = flac_payload(disguised.read_bytes())
    tags = open_tags(disguised)
    assert tags.format == "flac" and tags.field == "GENRE"
    tags.write_genres(["Rock"])
    assert [v for k, v in FLAC(disguised).tags if k == "GENRE"] == ["Rock"]
    assert flac_payload(disguised.read_bytes()) == before
    assert b"ID3" not in disguised.read_bytes()[:3]  # no ID3 tag was put in front of the FLAC


# ----------------------------------------------------------------------------- ID3 versions


def test_mp3_id3v23_joins_with_separator(fresh: Factory) -> None:
    path = fresh(".mp3")
    tags = open_tags(path, id3_version=3, id3_separator=" / ")
    tags.write_genres(["Rock", "Pop"])
    id3 = ID3(path, translate=False)
    assert id3.version == (2, 3, 0)
    assert id3["TCON"].text == ["Rock / Pop"]
    assert tags.read_genres() == ["Rock / Pop"]
    assert open_tags(path).read_genres() == ["Rock / Pop"]  # joined values come back as stored
    tags.write_genres(["Jazz"])
    assert ID3(path, translate=False)["TCON"].text == ["Jazz"]


def test_mp3_default_separator_and_v24(fresh: Factory) -> None:
    path = fresh(".mp3")
    open_tags(path, id3_version=3).write_genres(["Rock", "Pop"])
    assert ID3(path, translate=False)["TCON"].text == ["Rock; Pop"]
    other = fresh(".mp3", name="v24")
    open_tags(other).write_genres(["Rock", "Pop"])
    id3 = ID3(other, translate=False)
    assert id3.version == (2, 4, 0)
    assert id3["TCON"].text == ["Rock", "Pop"]
    assert b"Rock\x00Pop" in other.read_bytes()  # v2.4 null-separated values


@pytest.mark.parametrize("ext", ID3_EXTENSIONS)
def test_existing_v23_tag_stays_v23(ext: str, fresh: Factory) -> None:
    path = fresh(ext)
    add_other_tags(path, genre="(17)", id3_version=3)
    audio = MUTAGEN_CLASS[ext](path, translate=False)
    audio.tags.add(TYER(encoding=Encoding.LATIN1, text=["1999"]))
    audio.save(v2_version=3, v23_sep=None)
    tags = open_tags(path)  # default id3_version=4 must not upgrade
    assert isinstance(tags, ID3GenreTags) and tags.id3_version == 3
    assert tags.read_genres() == ["(17)"]  # numeric ID3v1 reference, as stored
    before = tags.read_other_tags()
    assert before["TYER"] == ["1999"] and before["TPE1"] == [ARTIST, "Second Artist"]
    tags.write_genres(["Rock", "Pop"])
    id3 = MUTAGEN_CLASS[ext](path, translate=False).tags
    assert id3.version == (2, 3, 0)
    assert id3["TCON"].text == ["Rock; Pop"]
    assert "TDRC" not in id3 and id3["TYER"].text == ["1999"]
    assert open_tags(path).read_other_tags() == before


def test_existing_v24_tag_stays_v24_even_if_v23_asked(fresh: Factory) -> None:
    path = fresh(".mp3")
    add_other_tags(path, genre="Pop")
    audio = MP3(path)
    audio.tags.add(TSOP(encoding=Encoding.UTF8, text=["Artist, The"]))  # v2.4-only frame
    audio.tags.add(TDRC(encoding=Encoding.UTF8, text=["2001-05-03"]))
    audio.save()
    tags = open_tags(path, id3_version=3)
    before = tags.read_other_tags()
    tags.write_genres(["Rock", "Pop"])
    id3 = ID3(path, translate=False)
    assert id3.version == (2, 4, 0)
    assert id3["TCON"].text == ["Rock", "Pop"]
    assert id3["TSOP"].text == ["Artist, The"]
    assert open_tags(path).read_other_tags() == before


def _id3v22_tag(frames: list[tuple[bytes, str]]) -> bytes:
    """A hand-made ID3v2.2 tag (mutagen can read but not write v2.2)."""
    body = b"".join(name + len(b"\x00" + t.encode()).to_bytes(3, "big") + b"\x00" + t.encode() for name, t in frames)
    size = len(body) + 16
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x02\x00\x00" + synchsafe + body + b"\x00" * 16


@pytest.mark.parametrize("version", [3, 4])
def test_id3v22_is_upgraded_to_requested_version(version: int, fresh: Factory) -> None:
    path = fresh(".mp3")
    audio_before = payload(path)
    path.write_bytes(_id3v22_tag([(b"TT2", "Old Title"), (b"TCO", "(17)"), (b"TYE", "1998")]) + path.read_bytes())
    tags = open_tags(path, id3_version=version)
    assert isinstance(tags, ID3GenreTags) and tags.id3_version == 2
    assert tags.read_genres() == ["(17)"]
    tags.write_genres(["Rock"])
    id3 = ID3(path, translate=False)
    assert id3.version == (2, version, 0)
    assert id3["TIT2"].text == ["Old Title"]
    assert ("TYER" in id3) == (version == 3) and ("TDRC" in id3) == (version == 4)
    assert open_tags(path).read_genres() == ["Rock"]
    assert payload(path) == audio_before


def test_wav_and_aiff_get_id3_chunk(fresh: Factory) -> None:
    for ext, chunk in ((".wav", b"id3 "), (".aiff", b"ID3 ")):
        path = fresh(ext)
        assert chunk not in path.read_bytes()
        open_tags(path).write_genres(["Rock"])
        assert chunk in path.read_bytes()


def test_unknown_id3_frames_are_kept(fresh: Factory) -> None:
    """Frames mutagen has no class for are carried over byte for byte (same ID3 version)."""
    path = fresh(".mp3")
    add_other_tags(path)
    audio = MP3(path)
    body = b"private data \x00\x01\x02"
    audio.tags.unknown_frames = [b"XTST" + len(body).to_bytes(4, "big") + b"\x00\x00" + body]
    audio.save()
    tags = open_tags(path)
    before = tags.read_other_tags()
    assert "<unknown frames>" in before
    tags.write_genres(["Rock"])
    assert open_tags(path).read_other_tags() == before
    assert body in path.read_bytes()


@pytest.mark.parametrize(("ext", "id3_version"), [(".mp3", 3), (".mp3", 4), (".flac", 4), (".wma", 4)])
def test_as_stored_predicts_read_back(ext: str, id3_version: int, fresh: Factory) -> None:
    path = fresh(ext)
    tags = open_tags(path, id3_version=id3_version)
    asked = [" Rock", "Pop", "Rock ", ""]
    predicted = tags.as_stored(asked)
    assert predicted == (["Rock; Pop"] if id3_version == 3 else ["Rock", "Pop"])
    tags.write_genres(asked)
    assert tags.read_genres() == predicted
    assert open_tags(path).read_genres() == predicted
