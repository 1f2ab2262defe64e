"""Scan and restore on real files whose other tags this tool must not touch: ID3v1, APEv2, RIFF INFO,
an ID3v2 tag before a FLAC, ID3 frames mutagen cannot decode. Only the genre field changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mutagen.apev2 import APEv2
from mutagen.id3 import ID3, TCON, TIT2, Encoding
from sqlalchemy import select

from tagger.model import ModelCard
from tagger.policy import Policy
from tagger.restore import restore
from tagger.store import Database, Track
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.tags.conftest import (
    append_riff_chunk,
    decode,
    id3v1_block,
    raw_frame,
    raw_id3v2,
    riff_chunk,
    riff_list_info,
)
from tests.test_scan import latest_top_genre, run_scan

pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]

OWNER = "Chanson"  # never one of the tiny model's genres
CHANSON_V1 = 102  # its ID3v1 genre byte
JUNK_TITLE = b"\x03Caf\xe9 del Mar"  # flagged UTF-8, Latin-1 bytes


def _v1_only_mp3(root: Path) -> tuple[Path, Callable[[Path], bytes]]:
    path = make_track(root / "v1only.mp3", seconds=3.0)
    path.write_bytes(path.read_bytes() + id3v1_block("V1 Title", "V1 Artist", "v1 comment", genre=CHANSON_V1))
    return path, lambda p: p.read_bytes()[-128:]


def _ape_mp3(root: Path) -> tuple[Path, Callable[[Path], bytes]]:
    path = make_track(root / "ape.mp3", seconds=3.0)
    size = path.stat().st_size
    ape = APEv2()
    ape["Genre"], ape["Title"] = OWNER, "APE title"
    ape.save(path)
    length = path.stat().st_size - size
    return path, lambda p: p.read_bytes()[-length:]


def _info_wav(root: Path) -> tuple[Path, Callable[[Path], bytes]]:
    path = make_track(root / "info.wav", seconds=3.0)
    append_riff_chunk(path, riff_list_info({b"INAM": "Info Title", b"IGNR": OWNER}))
    return path, lambda p: riff_chunk(p, b"LIST")


def _id3_flac(root: Path) -> tuple[Path, Callable[[Path], bytes]]:
    path = make_track(root / "id3.flac", seconds=3.0)
    id3 = ID3()
    id3.add(TIT2(encoding=Encoding.UTF8, text=["ID3 title"]))
    id3.add(TCON(encoding=Encoding.UTF8, text=[OWNER]))
    id3.save(path)
    length = path.read_bytes().index(b"fLaC")
    return path, lambda p: p.read_bytes()[:length]


SECONDARY = {"id3v1": _v1_only_mp3, "apev2": _ape_mp3, "riff-info": _info_wav, "id3-before-flac": _id3_flac}


@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("kind", list(SECONDARY))
def test_owners_genre_in_a_secondary_tag_counts(
    kind: str, policy: Policy, tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    path, secondary = SECONDARY[kind](root)
    before_bytes, before_secondary, before_audio = path.read_bytes(), secondary(path), decode(path)
    before_others = open_tags(path).read_other_tags()
    summary = run_scan(database, tiny_card, root, policy=policy)
    model = latest_top_genre(database, path)
    written = {Policy.KEEP: None, Policy.MERGE: [OWNER, model], Policy.OVERWRITE: [model]}[policy]
    if written is None:
        assert summary.counts == {Outcome.KEPT: 1}, summary.failures
        assert path.read_bytes() == before_bytes  # keep must keep: no second genre added
    else:
        assert summary.counts == {Outcome.TAGGED: 1}, summary.failures
        assert open_tags(path).read_genres() == written
        assert secondary(path) == before_secondary  # overwrite writes the primary field only
        assert open_tags(path).read_other_tags() == before_others
        assert np.array_equal(decode(path), before_audio)
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None and track.user_genres == [OWNER]
    if written is not None:
        restore(database)
        assert open_tags(path).read_genres() == [] and secondary(path) == before_secondary


def test_id3v1_block_survives_scan_and_restore(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    root = tmp_path / "music"
    alone = make_track(root / "alone.mp3", seconds=3.0)
    alone.write_bytes(alone.read_bytes() + id3v1_block("V1 Title", "V1 Artist", "only a v1 comment"))
    both = make_track(root / "both.mp3", seconds=3.0)
    id3 = ID3()
    id3.add(TIT2(encoding=Encoding.UTF8, text=["V2 Title differs"]))
    id3.save(both)
    both.write_bytes(both.read_bytes() + id3v1_block("V1 Title", "V1 Artist", "v1 comment"))
    tails = {p: p.read_bytes()[-128:] for p in (alone, both)}
    audio = {p: decode(p) for p in (alone, both)}
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.TAGGED: 2}, summary.failures
    for path, tail in tails.items():
        assert path.read_bytes()[-128:] == tail  # `tail -c 128` identical: comment, title, genre byte
        assert np.array_equal(decode(path), audio[path])
    assert ID3(alone, load_v1=False).keys() == {"TCON"}  # nothing of v1 copied into v2
    assert ID3(both, load_v1=False)["TIT2"].text == ["V2 Title differs"]
    assert sum(r.restored for r in restore(database)) == 2
    for path, tail in tails.items():
        assert path.read_bytes()[-128:] == tail and "TCON" not in ID3(path, load_v1=False)


@pytest.mark.parametrize("version", [3, 4])
def test_undecodable_frame_survives_scan_and_restore(
    version: int, tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    path = make_track(root / "junk.mp3", seconds=3.0)
    title = raw_frame(b"TIT2", JUNK_TITLE, version)
    path.write_bytes(raw_id3v2([raw_frame(b"TPE1", b"\x00Artist", version), title], version) + path.read_bytes())
    others = open_tags(path).read_other_tags()
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.TAGGED: 1}, summary.failures
    assert title in path.read_bytes() and open_tags(path).read_other_tags() == others
    assert sum(r.restored for r in restore(database)) == 1
    assert title in path.read_bytes() and open_tags(path).read_genres() == []


def test_a_write_that_would_drop_a_frame_is_refused(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    root = tmp_path / "music"
    path = make_track(root / "odd.mp3", seconds=3.0)
    odd = raw_frame(b"tit2", b"\x00a frame id mutagen rejects", 4)
    path.write_bytes(raw_id3v2([odd], 4) + path.read_bytes())
    before = path.read_bytes()
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.FAILED: 1}
    ((_, reason),) = summary.failures
    assert "number of ID3v2 frames" in reason
    assert path.read_bytes() == before
