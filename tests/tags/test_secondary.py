"""Only the genre field changes: ID3v1, TAG+, APEv2, RIFF INFO, an ID3v2 tag before a FLAC and
frames mutagen cannot decode all survive byte for byte, and their genres are read."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from mutagen.apev2 import APEv2
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, TIT2, TPE1, Encoding

from tagger.errors import TagWriteError
from tagger.tags import id3 as id3_style
from tagger.tags import open_tags
from tests.tags.conftest import (
    add_other_tags,
    append_riff_chunk,
    decode,
    flac_payload,
    id3v1_block,
    no_temp_files,
    payload,
    raw_frame,
    raw_id3v2,
    riff_chunk,
    riff_list_info,
    syncsafe,
    tag_plus_block,
)

Factory = Callable[..., Path]
JUNK_TITLE = b"\x03Caf\xe9 del Mar"  # flagged UTF-8 (3), holding Latin-1 bytes: mutagen cannot decode it


def snapshot(path: Path) -> tuple[np.ndarray, dict[str, list[str]], bytes]:
    """Decoded audio, every non-genre tag (as this tool reads them) and the container's audio bytes."""
    return decode(path), open_tags(path).read_other_tags(), payload(path)


def assert_same_but_genre(before: tuple[np.ndarray, dict[str, list[str]], bytes], path: Path) -> None:
    audio, others, raw_audio = snapshot(path)
    assert np.array_equal(audio, before[0])
    assert others == before[1]
    assert raw_audio == before[2]


# ------------------------------------------------------------------------- item 1: ID3v1


def test_v1_only_mp3_keeps_its_block_and_nothing_is_merged_into_v2(fresh: Factory) -> None:
    path = fresh(".mp3")
    v1 = id3v1_block("V1 Title", "V1 Artist", "a v1 comment", genre=255)
    path.write_bytes(path.read_bytes() + v1)
    before = snapshot(path)
    tags = open_tags(path)
    assert tags.read_genres() == [] and tags.read_secondary_genres() == []  # 255: no genre
    tags.write_genres(["Rock"])
    data = path.read_bytes()
    assert data[-128:] == v1  # `tail -c 128` is identical, the comment included
    id3 = ID3(path, load_v1=False)
    assert list(id3.keys()) == ["TCON"]  # v1's title/artist/comment were not copied into v2
    assert_same_but_genre(before, path)
    assert open_tags(path).read_genres() == ["Rock"]
    tags.write_genres([])  # and removing the genre again leaves v1 alone too
    assert path.read_bytes()[-128:] == v1


def test_v1_and_v2_that_differ_both_stay_as_they_are(tagged: Factory) -> None:
    path = tagged(".mp3")  # v2: TITLE/ARTIST/COMMENT/... and genre Pop
    v1 = id3v1_block("Other Title", "Other Artist", "only in v1", genre=17)
    path.write_bytes(path.read_bytes() + v1)
    before = snapshot(path)
    tags = open_tags(path)
    assert tags.read_genres() == ["Pop"] and tags.read_secondary_genres() == ["Rock"]
    tags.write_genres(["Jazz"])
    assert path.read_bytes()[-128:] == v1
    assert_same_but_genre(before, path)
    assert "COMM:ID3v1 Comment:eng" not in ID3(path, load_v1=False)


def test_enhanced_tag_plus_block_is_kept_and_read(fresh: Factory) -> None:
    path = fresh(".mp3")
    trailer = tag_plus_block("Long Title", "Chanson") + id3v1_block("Long Title", genre=255)
    path.write_bytes(path.read_bytes() + trailer)
    tags = open_tags(path)
    assert tags.read_secondary_genres() == ["Chanson"]
    tags.write_genres(["Rock"])
    assert path.read_bytes()[-len(trailer) :] == trailer


def test_apev2_tag_in_an_mp3_is_kept_and_read(tagged: Factory) -> None:
    path = tagged(".mp3")
    size = path.stat().st_size
    ape = APEv2()
    ape["Genre"] = "Chanson"
    ape["Title"] = "APE title"
    ape["Cover Art (Front)"] = b"front.png\x00" + b"\x89PNG fake"  # a binary item next to the text ones
    ape.save(path)
    ape_bytes = path.read_bytes()[size:]
    v1 = id3v1_block("V1", genre=8)  # 8 = Jazz
    path.write_bytes(path.read_bytes() + v1)
    before = snapshot(path)
    tags = open_tags(path)
    assert tags.read_all_genres() == ["Pop", "Jazz", "Chanson"]  # written field, ID3v1, APEv2
    tags.write_genres(["Rock"])
    assert path.read_bytes()[-(len(ape_bytes) + 128) :] == ape_bytes + v1
    assert_same_but_genre(before, path)


# ------------------------------------------------------------------------- RIFF INFO, ID3 before FLAC


def test_riff_info_chunk_is_kept_and_its_genre_read(tagged: Factory) -> None:
    path = tagged(".wav")
    info = riff_list_info({b"INAM": "Info Title", b"IGNR": "Chanson", b"ICMT": "odd"})
    append_riff_chunk(path, info)
    before = snapshot(path)
    tags = open_tags(path)
    assert tags.read_all_genres() == ["Pop", "Chanson"]
    tags.write_genres(["Rock", "Jazz"])
    assert riff_chunk(path, b"LIST") == info[8:]
    assert_same_but_genre(before, path)
    assert open_tags(path).read_all_genres() == ["Rock", "Jazz", "Chanson"]


def test_aiff_annotation_chunk_is_kept(tagged: Factory) -> None:
    path = tagged(".aiff")
    note = b"a note from another program"
    anno = b"ANNO" + len(note).to_bytes(4, "big") + note + b"\x00" * (len(note) & 1)
    data = bytearray(path.read_bytes()) + anno
    data[4:8] = (len(data) - 8).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    before = snapshot(path)
    open_tags(path).write_genres(["Rock"])
    assert anno in path.read_bytes()
    assert_same_but_genre(before, path)


def test_id3v2_tag_before_a_flac_is_kept_and_its_genre_read(tagged: Factory) -> None:
    path = tagged(".flac")
    id3 = ID3()
    id3.add(TIT2(encoding=Encoding.UTF8, text=["ID3 title"]))
    id3.add(TCON(encoding=Encoding.UTF8, text=["Chanson"]))
    id3.save(path)
    prefix = path.read_bytes()[: path.read_bytes().index(b"fLaC")]
    before = decode(path), open_tags(path).read_other_tags(), flac_payload(path.read_bytes())
    tags = open_tags(path)
    assert tags.read_genres() == ["Pop"] and tags.read_secondary_genres() == ["Chanson"]
    tags.write_genres(["Rock"])
    data = path.read_bytes()
    assert data.startswith(prefix + b"fLaC")
    assert np.array_equal(decode(path), before[0]) and open_tags(path).read_other_tags() == before[1]
    assert flac_payload(data) == before[2]
    assert FLAC(path)["GENRE"] == ["Rock"]


# ------------------------------------------------------------------------- item 2: undecodable frames


def _junk_title_mp3(fresh: Factory, version: int, tag_flags: int = 0, frame_flags: int = 0) -> tuple[Path, bytes]:
    path = fresh(".mp3")
    title = raw_frame(b"TIT2", JUNK_TITLE, version, frame_flags)
    artist = raw_frame(b"TPE1", b"\x00Artist", version)
    path.write_bytes(raw_id3v2([artist, title], version, tag_flags) + path.read_bytes())
    return path, title


@pytest.mark.parametrize("version", [3, 4])
def test_undecodable_title_survives_byte_for_byte(version: int, fresh: Factory) -> None:
    path, title = _junk_title_mp3(fresh, version)
    before = snapshot(path)
    assert before[1]["TPE1"] == ["Artist"] and "TIT2" not in before[1]  # mutagen cannot read it ...
    open_tags(path).write_genres(["Rock"])
    assert title in path.read_bytes()  # ... and it is still there, unchanged
    assert_same_but_genre(before, path)
    assert ID3(path, translate=False).version == (2, version, 0)
    open_tags(path).write_genres([])  # restore's write keeps it too
    assert title in path.read_bytes() and "TCON" not in ID3(path)


def test_undecodable_frame_with_v24_frame_unsynchronisation_flag(fresh: Factory) -> None:
    path, title = _junk_title_mp3(fresh, 4, frame_flags=0x0002)  # frame-level unsynchronisation
    open_tags(path).write_genres(["Rock"])
    assert title in path.read_bytes()


@pytest.mark.parametrize(
    ("version", "flags", "body"),
    [
        (3, 0x0080, b"\x00\x00\x00\x20not zlib data"),  # v2.3 compression flag, bad data
        (4, 0x0009, b"\x00\x00\x00\x20not zlib data"),  # v2.4 compression + data length indicator
        (3, 0x0040, b"\x01encrypted?"),  # v2.3 encryption: mutagen never decodes it
    ],
    ids=["v23-compressed", "v24-compressed", "v23-encrypted"],
)
def test_frames_with_flags_mutagen_cannot_undo_survive(version: int, flags: int, body: bytes, fresh: Factory) -> None:
    path = fresh(".mp3")
    frame = raw_frame(b"TALB", body, version, flags)
    path.write_bytes(raw_id3v2([raw_frame(b"TPE1", b"\x00Artist", version), frame], version) + path.read_bytes())
    before = snapshot(path)
    open_tags(path).write_genres(["Rock"])
    assert frame in path.read_bytes()
    assert_same_but_genre(before, path)


def test_undecodable_frame_in_an_unsynchronised_v23_tag(fresh: Factory) -> None:
    """Tag-level unsynchronisation (v2.3): the frame comes back decoded, in a tag without the flag."""
    path, title = _junk_title_mp3(fresh, 3, tag_flags=0x80)  # no 0xFF in the tag: encoding is the identity
    open_tags(path).write_genres(["Rock"])
    assert title in path.read_bytes()
    assert open_tags(path).read_other_tags()[id3_style.FRAMES_ON_DISK_KEY] == ["2"]


def test_undecodable_frame_in_an_unsynchronised_v24_tag(fresh: Factory) -> None:
    """Tag-level unsynchronisation (v2.4): mutagen saves without it, so the raw frame gets its own flag."""
    path = fresh(".mp3")
    unsynced = b"\x03Caf\xe9 \xff\x00\xe0"  # "\xff\xe0" unsynchronised
    junk = raw_frame(b"TIT2", unsynced, 4)
    path.write_bytes(raw_id3v2([raw_frame(b"TPE1", b"\x00Artist", 4), junk], 4, flags=0x80) + path.read_bytes())
    open_tags(path).write_genres(["Rock"])
    data = path.read_bytes()
    assert data[5] & 0x80 == 0  # the new tag is not unsynchronised as a whole ...
    assert raw_frame(b"TIT2", unsynced, 4, flags=0x0002) in data  # ... this frame is, as before
    assert ID3(path)["TPE1"].text == ["Artist"]


def test_undecodable_genre_frame_is_replaced_not_doubled(fresh: Factory) -> None:
    path = fresh(".mp3")
    junk_genre = raw_frame(b"TCON", b"\x03Chanson fran\xe7aise", 4)
    path.write_bytes(raw_id3v2([junk_genre], 4) + path.read_bytes())
    open_tags(path).write_genres(["Rock"])
    data = path.read_bytes()
    assert junk_genre not in data and data.count(b"TCON") == 1


# ------------------------------------------------------------------------- item 3: refused, not damaged


@contextlib.contextmanager
def _unchanged(path: Path) -> Iterator[None]:
    before = path.read_bytes()
    yield
    assert path.read_bytes() == before
    assert no_temp_files(path.parent)


def test_a_frame_mutagen_drops_refuses_the_write(fresh: Factory) -> None:
    """A frame with an invalid ID is dropped by mutagen's loader: the frame count on disk catches it."""
    path = fresh(".mp3")
    odd = raw_frame(b"tit2", b"\x00lower-case id", 4)
    path.write_bytes(raw_id3v2([raw_frame(b"TPE1", b"\x00Artist", 4), odd], 4) + path.read_bytes())
    with _unchanged(path), pytest.raises(TagWriteError, match="number of ID3v2 frames"):
        open_tags(path).write_genres(["Rock"])


def test_duplicate_frames_mutagen_would_merge_refuse_the_write(fresh: Factory) -> None:
    path = fresh(".mp3")
    frames = [raw_frame(b"TPE1", b"\x00One", 3), raw_frame(b"TPE1", b"\x00Two", 3)]
    path.write_bytes(raw_id3v2(frames, 3) + path.read_bytes())
    with _unchanged(path), pytest.raises(TagWriteError, match="number of ID3v2 frames"):
        open_tags(path).write_genres(["Rock"])


def test_v22_frame_without_a_v23_equivalent_refuses_the_conversion(fresh: Factory) -> None:
    path = fresh(".mp3")
    body = b"".join(name + len(text).to_bytes(3, "big") + text for name, text in [(b"TT2", b"\x00T"), (b"XYZ", b"?")])
    tag = b"ID3\x02\x00\x00" + syncsafe(len(body) + 16) + body + b"\x00" * 16
    path.write_bytes(tag + path.read_bytes())
    with _unchanged(path), pytest.raises(TagWriteError, match="number of ID3v2 frames"):
        open_tags(path).write_genres(["Rock"])


def test_id3v1_regenerated_by_mutagen_is_refused(fresh: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without putting the end of the file back (the fix undone), the check refuses the write."""
    path = fresh(".mp3")
    path.write_bytes(path.read_bytes() + id3v1_block("T", comment="a comment"))
    monkeypatch.setattr(id3_style, "_end_kept", lambda path: contextlib.nullcontext())
    with _unchanged(path), pytest.raises(TagWriteError, match="ID3v1 changed"):
        open_tags(path).write_genres(["Rock"])


def test_undecodable_frame_dropped_by_mutagen_is_refused(fresh: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """With mutagen's own frame table (the fix undone), the frame count refuses the write."""
    path, _ = _junk_title_mp3(fresh, 4)
    from mutagen.id3 import Frames, Frames_2_2

    monkeypatch.setattr(id3_style, "_KEEPING_FRAMES", {**Frames_2_2, **Frames})
    with _unchanged(path), pytest.raises(TagWriteError, match="number of ID3v2 frames"):
        open_tags(path).write_genres(["Rock"])


def test_riff_chunk_changed_by_the_save_is_refused(tagged: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tagged(".wav")
    append_riff_chunk(path, riff_list_info({b"IGNR": "Chanson"}))
    tags = open_tags(path)
    real_save = type(tags)._save

    def save_and_damage(self: object, audio: object) -> None:
        real_save(self, audio)  # type: ignore[arg-type]
        with open(audio.filename, "r+b") as handle:  # type: ignore[attr-defined]
            data = handle.read()
            handle.seek(data.index(b"Chanson"))
            handle.write(b"X")

    monkeypatch.setattr(type(tags), "_save", save_and_damage)
    with _unchanged(path), pytest.raises(TagWriteError, match="chunk LIST#0 changed"):
        tags.write_genres(["Rock"])


def test_secondary_genres_of_files_without_them(tagged: Factory) -> None:
    for ext in (".mp3", ".wav", ".aiff", ".flac", ".ogg", ".m4a", ".wma"):
        tags = open_tags(tagged(ext, name=f"plain{ext[1:]}"))
        assert tags.read_secondary_genres() == []
        assert tags.read_all_genres() == ["Pop"]


def test_id3v1_genre_only_mp3_reads_the_owners_genre(fresh: Factory) -> None:
    path = fresh(".mp3")
    path.write_bytes(path.read_bytes() + id3v1_block(genre=17))
    tags = open_tags(path)
    assert tags.read_genres() == [] and tags.read_all_genres() == ["Rock"]


def test_v1_title_that_only_v1_has_is_not_merged(fresh: Factory) -> None:
    """Replaces the old behaviour (v1 merged into v2 on load, regenerated on save)."""
    path = fresh(".mp3")
    add_other_tags(path, genre="Blues")
    audio = ID3(path)
    audio.delall("TIT2")
    audio.add(TPE1(encoding=Encoding.LATIN1, text=["V2 Artist"]))
    audio.save(path)
    v1 = id3v1_block("Only In V1", "V1 Artist", genre=0)
    path.write_bytes(path.read_bytes() + v1)
    tags = open_tags(path)
    before = tags.read_other_tags()
    assert "TIT2" not in before
    tags.write_genres(["Rock"])
    assert path.read_bytes()[-128:] == v1 and open_tags(path).read_other_tags() == before
