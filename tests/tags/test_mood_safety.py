"""A mood write is refused exactly where a genre write is, and odd stored moods are never lost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mutagen import FileType
from mutagen.asf import ASF, ASFByteArrayAttribute
from mutagen.id3 import ID3, TPE1, TXXX, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggvorbis import OggVorbis

from tagger.errors import FileError, TagReadError, TagWriteError
from tagger.tags import open_tags
from tagger.tags.leases import BEING_WRITTEN
from tagger.tags.safe_write import finish_in_place, staged_copy
from tests.audio_factory import ALL_EXTENSIONS
from tests.tags.conftest import (
    OLD_GENRE,
    add_other_tags,
    mangled_copies,
    no_temp_files,
    payload,
    raw_frame,
    raw_id3v2,
    unchanged,
)

Factory = Callable[..., Path]
MP4_MOOD = "----:com.apple.iTunes:MOOD"


# ------------------------------------------------------------------------- the refusals a genre write has


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_read_only_file_is_refused(ext: str, tagged: Factory) -> None:
    path = tagged(ext)
    tags = open_tags(path)
    path.chmod(0o444)
    with unchanged(path), pytest.raises(TagWriteError, match="read-only file"):
        tags.write({"mood": ["Happy"]})
    assert tags.read("mood") == [] and tags.read_genres() == [OLD_GENRE]


def test_file_swapped_since_open_is_refused(tagged: Factory, fresh: Factory) -> None:
    path = tagged(".flac")
    tags = open_tags(path)
    os.replace(fresh(".flac", name="newcomer"), path)
    with unchanged(path), pytest.raises(TagWriteError, match="replaced since it was opened"):
        tags.write({"mood": ["Happy"]})


@pytest.mark.timeout(60)
def test_a_file_open_for_writing_elsewhere_is_left_alone(tagged: Factory) -> None:
    path = tagged(".opus")
    tags = open_tags(path)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'r+b'); print(1, flush=True); input()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "1\n"
        with unchanged(path), pytest.raises(TagWriteError, match=BEING_WRITTEN):
            tags.write({"genre": ["Jazz"], "mood": ["Sad"]})
    finally:
        writer.communicate("\n", timeout=10)
    tags.write({"genre": ["Jazz"], "mood": ["Sad"]})  # closed: now it may
    assert open_tags(path).read("mood") == ["Sad"]


@pytest.mark.parametrize("ext", [".mp3", ".flac", ".m4a", ".wma"])
def test_a_hard_linked_file_gets_its_mood_in_place(ext: str, tagged: Factory) -> None:
    original = tagged(ext)
    (original.parent / "seed").mkdir()
    other = original.parent / "seed" / original.name
    os.link(original, other)
    inode, audio, others = original.stat().st_ino, payload(original), open_tags(original).read_other_tags(("mood",))
    open_tags(original).write({"mood": ["Relaxed"]})
    assert original.stat().st_ino == other.stat().st_ino == inode and original.stat().st_nlink == 2
    assert open_tags(other).read("mood") == ["Relaxed"] and open_tags(other).read_genres() == [OLD_GENRE]
    assert open_tags(other).read_other_tags(("mood",)) == others and payload(other) == audio
    assert no_temp_files(original.parent) and not staged_copy(original).exists()


def test_a_mood_write_in_place_cut_short_is_finished_from_its_staged_copy(tagged: Factory) -> None:
    original = tagged(".flac")
    other = original.with_name("other.flac")
    os.link(original, other)
    done = original.with_name("done.flac")
    done.write_bytes(original.read_bytes())
    open_tags(done).write({"genre": ["Jazz"], "mood": ["Sad"]})  # what the interrupted write had verified
    staged = staged_copy(original)
    os.replace(done, staged)
    with open(original, "r+b") as handle:  # the crash: only the first bytes made it
        handle.write(staged.read_bytes()[:100])
    finish_in_place(original, ["Sad"], "mood")
    assert open_tags(other).read("mood") == ["Sad"] and open_tags(other).read_genres() == ["Jazz"]
    assert original.stat().st_ino == other.stat().st_ino and not staged.exists()
    staged.write_bytes(b"stale")  # the file already holds the mood: a leftover staged copy just goes
    finish_in_place(original, ["Sad"], "mood")
    assert not staged.exists() and open_tags(original).read("mood") == ["Sad"]


@pytest.mark.parametrize("moods", ["Happy", [b"Happy"], ["Hap\x07py"], None])
def test_invalid_moods_are_refused(moods: Any, tagged: Factory) -> None:
    path = tagged(".mp3")
    with unchanged(path), pytest.raises(TagWriteError, match="mood"):
        open_tags(path).write({"mood": moods})


def test_save_that_touches_the_genre_is_caught(tagged: Factory, monkeypatch: Any) -> None:
    """The re-read check: a save that also changed the genre (or anything else) is refused."""
    path = tagged(".mp3")
    original_save = MP3.save

    def meddling_save(self: FileType, *args: Any, **kwargs: Any) -> None:
        self.tags.delall("TCON")
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(MP3, "save", meddling_save)
    with unchanged(path), pytest.raises(TagWriteError, match=r"verification failed: other tags changed \(TCON, "):
        open_tags(path).write({"mood": ["Happy"]})


def test_save_that_loses_the_mood_is_caught(tagged: Factory, monkeypatch: Any) -> None:
    path = tagged(".ogg")
    original_save = OggVorbis.save

    def forgetful_save(self: FileType, *args: Any, **kwargs: Any) -> None:
        del self.tags["MOOD"]
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(OggVorbis, "save", forgetful_save)
    with unchanged(path), pytest.raises(TagWriteError, match="verification failed: wrote"):
        open_tags(path).write({"genre": ["Rock"], "mood": ["Happy"]})


def test_other_tags_mutagen_would_merge_refuse_a_mood_write(fresh: Factory) -> None:
    """Two TCON frames (mutagen merges them on save): the genre would change, so a mood write is refused."""
    path = fresh(".mp3")
    frames = [raw_frame(b"TCON", b"\x00Pop", 3), raw_frame(b"TCON", b"\x00Jazz", 3), raw_frame(b"TIT2", b"\x00T", 3)]
    path.write_bytes(raw_id3v2(frames, version=3) + path.read_bytes())
    tags = open_tags(path)
    with unchanged(path), pytest.raises(TagWriteError, match="frames would be merged or lost"):
        tags.write({"mood": ["Happy"]})
    tags.write({"genre": ["Rock"], "mood": ["Happy"]})  # writing the genre too replaces both frames: allowed
    assert open_tags(path).read("genre") == ["Rock"] and open_tags(path).read("mood") == ["Happy"]


# ------------------------------------------------------------------------- ID3 spellings on disk


@pytest.mark.parametrize("encoding", [Encoding.LATIN1, Encoding.UTF16, Encoding.UTF16BE, Encoding.UTF8])
def test_v23_txxx_mood_in_any_encoding_is_replaced(encoding: Encoding, fresh: Factory) -> None:
    path = fresh(".mp3")
    add_other_tags(path, genre=OLD_GENRE, id3_version=3)
    audio = MP3(path)
    audio.tags.add(TXXX(encoding=encoding, desc="MOOD", text=["Dreamy"]))
    audio.tags.add(TXXX(encoding=encoding, desc="MOODY", text=["not a mood"]))  # a look-alike description
    audio.save(v2_version=3, v23_sep=None)
    tags = open_tags(path)
    assert tags.read("mood") == ["Dreamy"]
    others = tags.read_other_tags(("mood",))
    tags.write({"mood": ["Happy"]})
    id3 = ID3(path, translate=False)
    assert id3.version == (2, 3, 0) and id3["TXXX:MOOD"].text == ["Happy"]
    assert id3["TXXX:MOODY"].text == ["not a mood"]
    assert open_tags(path).read_other_tags(("mood",)) == others


def test_v24_undecodable_tmoo_is_kept_by_a_genre_write(fresh: Factory) -> None:
    path = fresh(".mp3")
    bad = raw_frame(b"TMOO", b"\x03caf\xe9", 4)  # flagged UTF-8, holds Latin-1
    path.write_bytes(raw_id3v2([bad, raw_frame(b"TIT2", b"\x03T", 4)], version=4) + path.read_bytes())
    open_tags(path).write_genres(["Rock"])
    assert bad in path.read_bytes()
    tags = open_tags(path)
    tags.write({"mood": ["Happy"]})  # the mood's own field, undecodable: replaced, as an undecodable TCON is
    assert bad not in path.read_bytes() and open_tags(path).read("mood") == ["Happy"]


def test_v22_tag_with_a_mood_is_converted(fresh: Factory) -> None:
    path = fresh(".mp3")
    body = b"TT2" + (2).to_bytes(3, "big") + b"\x00T" + b"TXX" + (11).to_bytes(3, "big") + b"\x00MOOD\x00Dark"
    size = len(body) + 16
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    path.write_bytes(b"ID3\x02\x00\x00" + synchsafe + body + b"\x00" * 16 + path.read_bytes())
    tags = open_tags(path, id3_version=4)
    assert tags.read_all("mood") == ["Dark"]
    tags.write({"mood": ["Happy"]})
    id3 = ID3(path, translate=False)
    assert id3.version == (2, 4, 0) and id3["TMOO"].text == ["Happy"] and id3["TXXX:MOOD"].text == ["Dark"]
    assert open_tags(path).read_all("mood") == ["Happy", "Dark"]


# ------------------------------------------------------------------------- values that are not moods we can read


def _mp4_with_mood(tagged: Factory, values: list[MP4FreeForm], key: str = MP4_MOOD) -> Path:
    path = tagged(".m4a")
    audio = MP4(path)
    audio.tags[key] = values
    audio.save()
    return path


@pytest.mark.parametrize(
    "value",
    [MP4FreeForm(b"\xff\xfe\x00binary", dataformat=AtomDataType.UTF8), MP4FreeForm(b"\x89PNG", AtomDataType.PNG)],
    ids=["not-utf8", "png"],
)
def test_mp4_mood_that_is_not_text_is_a_read_error_and_kept(value: MP4FreeForm, tagged: Factory) -> None:
    path = _mp4_with_mood(tagged, [value])
    tags = open_tags(path)
    for read in (lambda: tags.read("mood"), lambda: tags.read_all("mood")):
        with pytest.raises(TagReadError, match="MOOD holds data that is not text"):
            read()
    with unchanged(path), pytest.raises(TagWriteError, match="refusing to replace what cannot be read"):
        tags.write({"genre": ["Rock"], "mood": ["Happy"]})
    tags.write_genres(["Rock"])  # the genre alone: the odd mood stays as it was, byte for byte
    assert MP4(path).tags[MP4_MOOD] == [value] and open_tags(path).read_genres() == ["Rock"]


def test_mp4_mood_in_utf16_and_other_spellings_are_read(tagged: Factory) -> None:
    path = _mp4_with_mood(tagged, [MP4FreeForm("Düster".encode("utf-16-be"), dataformat=AtomDataType.UTF16)])
    audio = MP4(path)
    audio.tags["----:com.apple.iTunes:mood"] = [MP4FreeForm(b"chill")]
    audio.save()
    tags = open_tags(path)
    assert tags.read("mood") == ["Düster"] and tags.read_all("mood") == ["Düster", "chill"]
    tags.write({"mood": ["Sad"]})
    audio = MP4(path)
    assert audio.tags[MP4_MOOD] == [MP4FreeForm(b"Sad", dataformat=AtomDataType.UTF8)]
    assert audio.tags["----:com.apple.iTunes:mood"] == [MP4FreeForm(b"chill")]


def test_asf_mood_that_is_not_text_is_a_read_error_and_kept(tagged: Factory) -> None:
    path = tagged(".wma")
    audio = ASF(path)
    audio.tags["WM/Mood"] = [ASFByteArrayAttribute(b"\x00\x01binary")]
    audio.save()
    tags = open_tags(path)
    with pytest.raises(TagReadError, match="WM/Mood holds a ASFByteArrayAttribute, not text"):
        tags.read("mood")
    with unchanged(path), pytest.raises(TagWriteError, match="refusing to replace what cannot be read"):
        tags.write({"mood": ["Happy"]})
    tags.write_genres(["Rock"])
    assert [bytes(v.value) for v in ASF(path).tags["WM/Mood"]] == [b"\x00\x01binary"]


def test_a_genre_write_never_touches_a_mood_written_by_another_tool(tagged: Factory, monkeypatch: Any) -> None:
    """Other frames survive a combined write, too: the artist is not one of the fields written."""
    path = tagged(".mp3")
    original_save = MP3.save

    def meddling_save(self: FileType, *args: Any, **kwargs: Any) -> None:
        self.tags.add(TPE1(encoding=Encoding.UTF8, text=["Someone Else"]))
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(MP3, "save", meddling_save)
    with unchanged(path), pytest.raises(TagWriteError, match=r"other tags changed \(TPE1\)"):
        open_tags(path).write({"genre": ["Rock"], "mood": ["Happy"]})


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_mangled_files_never_crash_a_mood_write(ext: str, tagged: Factory) -> None:
    """Mini-fuzz, as for the genre: every outcome is a FileError or a write; a refusal leaves the bytes."""
    source = tagged(ext)
    open_tags(source).write({"mood": ["Happy", "Calm"]})
    outcomes: set[str] = set()
    for path, mangled in mangled_copies(source, f"mood{ext}", 18):
        try:
            tags = open_tags(path)
            tags.read("mood")
            tags.read_all("mood")
            tags.read_other_tags(("mood",))
        except FileError as exc:
            outcomes.add(type(exc).__name__)
            assert path.read_bytes() == mangled
            continue
        try:
            tags.write({"genre": ["Rock"], "mood": ["Sad"]})
            outcomes.add("written")
        except TagWriteError:
            outcomes.add("refused")
            assert path.read_bytes() == mangled
    assert no_temp_files(source.parent)
    assert "written" in outcomes
