"""The mood role: every format's MOOD field written, read, removed, with the genre's safety."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import TMOO, TXXX, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tagger.tags import ROLES, GenreTags, open_tags
from tagger.tags import safe_write as safe_write_module
from tests.tags.conftest import ARTIST, ID3_EXTENSIONS, OLD_GENRE, add_other_tags, decode, no_temp_files, payload

Factory = Callable[..., Path]
MUTAGEN_CLASS = {
    ".mp3": MP3, ".wav": WAVE, ".aiff": AIFF, ".flac": FLAC, ".ogg": OggVorbis, ".opus": OggOpus,
    ".m4a": MP4, ".wma": ASF,
}  # fmt: skip
MP4_MOOD = "----:com.apple.iTunes:MOOD"

# (case id, extension, ID3 version of the file's tag: 3/4, 0 = the file has no tag at all)
CASES = [
    ("mp3-v23", ".mp3", 3), ("mp3-v24", ".mp3", 4), ("mp3-untagged-v23", ".mp3", -3), ("mp3-untagged", ".mp3", 0),
    ("wav", ".wav", 4), ("wav-v23", ".wav", 3), ("aiff", ".aiff", 4), ("flac", ".flac", 4), ("ogg", ".ogg", 4),
    ("opus", ".opus", 4), ("m4a", ".m4a", 4), ("wma", ".wma", 4),
]  # fmt: skip
IDS = [case[0] for case in CASES]
MOOD_FIELD = {".flac": "MOOD", ".ogg": "MOOD", ".opus": "MOOD", ".m4a": MP4_MOOD, ".wma": "WM/Mood"}


def make(factory: Factory, fresh: Factory, ext: str, version: int) -> tuple[Path, int]:
    """The case's file and the ``id3_version`` to open it with (it only matters without a tag)."""
    if version <= 0:
        return fresh(ext), -version or 4
    path = fresh(ext)
    add_other_tags(path, genre=OLD_GENRE, id3_version=version)
    return path, 4


def mood_field(ext: str, version: int) -> str:
    if ext in ID3_EXTENSIONS:
        return "TMOO" if version == 4 else "TXXX:MOOD"
    return MOOD_FIELD[ext]


def native_moods(path: Path) -> list[tuple[str, str]]:
    """(native key, value) of every mood entry, read with plain mutagen, not our module."""
    ext = path.suffix
    kind = MUTAGEN_CLASS[ext]
    if ext in ID3_EXTENSIONS:
        tags = kind(path, translate=False).tags
        if tags is None:
            return []
        frames = [(key, frame) for key, frame in tags.items() if frame.FrameID in ("TMOO", "TXXX")]
        return [(key, v) for key, frame in frames if key in ("TMOO", "TXXX:MOOD") for v in frame.text]
    tags = kind(path).tags
    if tags is None:
        return []
    if ext in (".flac", ".ogg", ".opus"):
        return [(k, v) for k, v in tags if k.lower() == "mood"]
    if ext == ".m4a":
        return [(k, bytes(v).decode()) for k, values in tags.items() if k.lower().endswith(":mood") for v in values]
    return [(k, str(v)) for k, v in tags if k.lower() == "wm/mood"]


def id3_version_on_disk(path: Path) -> int | None:
    tags = MUTAGEN_CLASS[path.suffix](path, translate=False).tags
    return None if tags is None else int(tags.version[1])


@pytest.fixture
def counted_rewrites(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The temp copies the writer makes (each rewrite makes one), counted at ``mkstemp``."""
    made: list[str] = []
    real = tempfile.mkstemp

    def counting(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)  # type: ignore[call-overload]
        made.append(name)
        return fd, name

    monkeypatch.setattr(safe_write_module.tempfile, "mkstemp", counting)
    yield made


# ----------------------------------------------------------------------------- every format


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_field_name(case: str, ext: str, version: int, fresh: Factory) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    tags = open_tags(path, id3_version=id3_version)
    expected = mood_field(ext, abs(version) or 4)
    assert tags.field_name("mood") == expected
    assert tags.field_name("genre") == tags.field
    assert tags.read("mood") == [] and tags.read_all("mood") == []


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_mood_only_changes_the_mood(case: str, ext: str, version: int, fresh: Factory) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    tags = open_tags(path, id3_version=id3_version)
    genre = tags.read("genre")
    others = tags.read_other_tags(besides=("mood",))  # the genre field included
    audio, audio_bytes = decode(path), payload(path)
    assert genre == ([] if version <= 0 else [OLD_GENRE])

    tags.write({"mood": ["Happy"]})
    after = open_tags(path)
    assert tags.read("mood") == after.read("mood") == ["Happy"]
    assert native_moods(path) == [(mood_field(ext, abs(version) or 4), "Happy")]
    assert after.read("genre") == genre
    assert after.read_other_tags(besides=("mood",)) == others
    assert payload(path) == audio_bytes
    assert np.array_equal(decode(path), audio)
    if ext in ID3_EXTENSIONS:
        assert id3_version_on_disk(path) == (abs(version) or 4)
    assert no_temp_files(path.parent)


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_genre_and_mood_in_one_rewrite(
    case: str, ext: str, version: int, fresh: Factory, counted_rewrites: list[str]
) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    tags = open_tags(path, id3_version=id3_version)
    others = tags.read_other_tags(besides=ROLES)
    inode = path.stat().st_ino
    tags.write({"genre": ["Rock"], "mood": ["Sad"]})
    assert len(counted_rewrites) == 1  # one temp copy: both fields went in together
    assert path.stat().st_ino != inode
    after = open_tags(path)
    assert after.read("genre") == ["Rock"] and after.read("mood") == ["Sad"]
    assert after.read_other_tags(besides=ROLES) == others
    tags.write({"genre": ["Rock"], "mood": ["Sad"]})  # nothing would change: no rewrite at all
    assert len(counted_rewrites) == 1


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_remove_mood_keeps_genre(case: str, ext: str, version: int, fresh: Factory) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    open_tags(path, id3_version=id3_version).write({"genre": ["Rock"], "mood": ["Happy", "Relaxed"]})
    tags = open_tags(path)
    others = tags.read_other_tags(besides=("mood",))
    tags.write({"mood": []})
    assert open_tags(path).read("mood") == [] and native_moods(path) == []
    assert open_tags(path).read("genre") == ["Rock"]
    assert open_tags(path).read_other_tags(besides=("mood",)) == others


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_several_moods_and_as_stored(case: str, ext: str, version: int, fresh: Factory) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    tags = open_tags(path, id3_version=id3_version, id3_separator=" / ")
    asked = [" Happy", "Relaxed", "Happy ", ""]
    predicted = tags.as_stored(asked, "mood")
    v23 = ext in ID3_EXTENSIONS and abs(version) == 3
    assert predicted == (["Happy / Relaxed"] if v23 else ["Happy", "Relaxed"])
    tags.write({"mood": asked})
    assert tags.read("mood") == open_tags(path).read("mood") == predicted
    field = mood_field(ext, abs(version) or 4)
    assert native_moods(path) == [(field, value) for value in predicted]
    assert tags.as_stored(["Rock", "Pop"]) == (["Rock / Pop"] if v23 else ["Rock", "Pop"])  # the genre's shorthand


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_genre_write_keeps_the_owners_mood(case: str, ext: str, version: int, fresh: Factory) -> None:
    path, id3_version = make(fresh, fresh, ext, version)
    open_tags(path, id3_version=id3_version).write({"mood": ["Mellow", "Calm"]})
    tags = open_tags(path)
    moods, others = tags.read("mood"), tags.read_other_tags()
    tags.write_genres(["Jazz"])
    after = open_tags(path)
    assert after.read("mood") == moods and after.read_genres() == ["Jazz"]
    assert after.read_other_tags() == others  # the mood field is one of the "other tags" of a genre write


@pytest.mark.parametrize(("case", "ext", "version"), CASES, ids=IDS)
def test_a_writer_that_also_touches_the_genre_is_refused(
    case: str, ext: str, version: int, fresh: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write's own check, not only these tests, catches a mood write that changes the genre."""
    path, id3_version = make(fresh, fresh, ext, version)
    tags = open_tags(path, id3_version=id3_version)
    family = type(tags)
    real_apply = family._apply

    def sloppy(self: GenreTags, audio: object, role: str, values: list[str]) -> None:
        real_apply(self, audio, role, values)  # type: ignore[arg-type]
        if role == "mood":
            real_apply(self, audio, "genre", ["Hacked"])

    monkeypatch.setattr(family, "_apply", sloppy)
    before = path.read_bytes()
    with pytest.raises(Exception, match="other tags would change"):
        tags.write({"mood": ["Happy"]})
    assert path.read_bytes() == before and no_temp_files(path.parent)


# ----------------------------------------------------------------------------- the owner's moods, as found


def test_id3_other_spellings_are_read_and_kept(fresh: Factory) -> None:
    for version, own, other in ((4, "TMOO", "TXXX:MOOD"), (3, "TXXX:MOOD", "TMOO")):
        path = fresh(".mp3", name=f"v2{version}")
        add_other_tags(path, genre=OLD_GENRE, id3_version=version)
        audio = MP3(path)
        audio.tags.add(TXXX(encoding=Encoding.UTF16, desc="MOOD" if version == 4 else "mood", text=["Dreamy"]))
        if version == 3:
            audio.tags.add(TMOO(encoding=Encoding.LATIN1, text=["Dark"]))
        audio.save(v2_version=version, v23_sep=None)
        tags = open_tags(path)
        assert tags.field_name("mood") == own
        assert tags.read("mood") == []
        assert sorted(tags.read_all("mood")) == (["Dreamy"] if version == 4 else ["Dark", "Dreamy"])
        tags.write({"mood": ["Happy"]})
        id3 = MP3(path, translate=False).tags
        assert id3.version[1] == version
        assert id3[own].text == ["Happy"]
        everything = open_tags(path).read_all("mood")
        assert everything[0] == "Happy"  # the version's own field first
        assert sorted(everything[1:]) == (["Dreamy"] if version == 4 else ["Dark", "Dreamy"])
        if version == 4:
            assert id3[other].text == ["Dreamy"]  # the other spelling is the owner's: left alone
        else:
            assert id3["TMOO"].text == ["Dark"] and id3["TXXX:mood"].text == ["Dreamy"]


def test_vorbis_lower_case_mood_is_read_and_replaced(fresh: Factory) -> None:
    for ext in (".flac", ".ogg", ".opus"):
        path = fresh(ext)
        add_other_tags(path, genre=OLD_GENRE)
        audio = MUTAGEN_CLASS[ext](path)
        audio.tags.append(("mood", "chill"))  # two spellings of the key (setting one would replace the other)
        audio.tags.append(("Mood", "late night"))
        audio.save()
        tags = open_tags(path)
        assert tags.read("mood") == tags.read_all("mood") == ["chill", "late night"]
        others = tags.read_other_tags(besides=("mood",))
        tags.write({"mood": ["Relaxed"]})
        assert native_moods(path) == [("MOOD", "Relaxed")]
        assert open_tags(path).read_other_tags(besides=("mood",)) == others
        assert open_tags(path).read_genres() == [OLD_GENRE]


def test_unknown_role_is_refused(fresh: Factory) -> None:
    path = fresh(".flac")
    tags = open_tags(path)
    before = path.read_bytes()
    for call in (
        lambda: tags.write({"moods": ["Happy"]}),  # type: ignore[dict-item]
        lambda: tags.read("Mood"),  # type: ignore[arg-type]
        lambda: tags.field_name("title"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="role must be one of genre, mood"):
            call()
    assert path.read_bytes() == before


def test_write_nothing_does_nothing(fresh: Factory, counted_rewrites: list[str]) -> None:
    path = fresh(".mp3")
    open_tags(path).write({})
    assert counted_rewrites == [] and id3_version_on_disk(path) is None


def test_artist_survives(fresh: Factory) -> None:
    path = fresh(".wma")
    add_other_tags(path, genre=OLD_GENRE)
    open_tags(path).write({"mood": ["Aggressive"]})
    assert [str(v) for v in ASF(path).tags["Author"]] == [ARTIST, "Second Artist"]
