"""Hard links: a tag write keeps them (written in place, same inode) unless ``hardlinks="break"``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tagger.config import settings_from_dict
from tagger.errors import TagWriteError
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database
from tagger.tags import open_tags
from tagger.tags.safe_write import STAGED_MARKER, finish_in_place, staged_copy
from tagger.track import Outcome
from tests.audio_factory import ALL_EXTENSIONS, make_track
from tests.tags.conftest import OLD_GENRE, decode, no_temp_files, payload

Factory = Callable[..., Path]


def linked(tagged: Factory, ext: str) -> tuple[Path, Path]:
    """A tagged file and a second name for it in another folder (a torrent client's seeding copy)."""
    original = tagged(ext)
    seed = original.parent / "seed"
    seed.mkdir()
    os.link(original, seed / original.name)
    return original, seed / original.name


@pytest.mark.parametrize("ext", ALL_EXTENSIONS)
def test_keep_writes_a_hard_linked_file_in_place(ext: str, tagged: Factory) -> None:
    original, other = linked(tagged, ext)
    audio, others, inode = payload(original), open_tags(original).read_other_tags(), original.stat().st_ino
    open_tags(original).write_genres(["Jazz"])
    assert original.stat().st_ino == other.stat().st_ino == inode and original.stat().st_nlink == 2
    assert open_tags(original).read_genres() == open_tags(other).read_genres() == ["Jazz"]
    assert payload(other) == audio and open_tags(other).read_other_tags() == others
    assert no_temp_files(original.parent) and not list(original.parent.glob(f"*{STAGED_MARKER}"))


def test_break_replaces_the_file_and_the_other_name_keeps_the_old_bytes(tagged: Factory) -> None:
    original, other = linked(tagged, ".flac")
    open_tags(original, hardlinks="break").write_genres(["Jazz"])
    assert original.stat().st_ino != other.stat().st_ino and other.stat().st_nlink == 1
    assert open_tags(original).read_genres() == ["Jazz"] and open_tags(other).read_genres() == [OLD_GENRE]


def test_a_hard_linked_file_another_process_has_open_is_left_alone(tagged: Factory) -> None:
    original, other = linked(tagged, ".mp3")
    before = original.read_bytes()
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'rb'); print('open', flush=True); sys.stdin.read()",
         str(other)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "open\n"
        with pytest.raises(TagWriteError, match="hard-linked and open in another process"):
            open_tags(original).write_genres(["Jazz"])
    finally:
        reader.communicate("", timeout=30)
    assert original.read_bytes() == before and no_temp_files(original.parent)
    assert not staged_copy(original).exists()


def test_a_write_in_place_cut_short_is_finished_from_its_staged_copy(tagged: Factory) -> None:
    """A crash after the verified copy was staged and before the original's bytes were all rewritten."""
    original, other = linked(tagged, ".flac")
    done = original.parent / "done.flac"
    done.write_bytes(original.read_bytes())
    open_tags(done).write_genres(["Jazz"])  # what the interrupted write had verified
    staged = staged_copy(original)
    os.replace(done, staged)
    with open(original, "r+b") as f:  # the crash: only the first bytes made it
        f.write(staged.read_bytes()[:100])
    finish_in_place(original, ["Jazz"])
    assert open_tags(other).read_genres() == ["Jazz"] and original.stat().st_ino == other.stat().st_ino
    assert original.read_bytes() == other.read_bytes() and not staged.exists()


@pytest.mark.model
@pytest.mark.parametrize("mode", ["keep", "break"])
def test_scan_keeps_hard_links_by_default(mode: str, tmp_path: Path, tiny_card: ModelCard) -> None:
    music, seed = tmp_path / "music", tmp_path / "seed"
    track = make_track(music / "techno.flac", genre="techno", seconds=4.0)
    seed.mkdir()
    os.link(track, seed / track.name)
    samples = decode(track)
    settings = settings_from_dict({"hardlinks": mode})
    library = Library(Database(tmp_path / "tagger.db"), tiny_card, TagOptions.from_settings(settings))
    with Scanner(library, isolate=False) as scanner:
        (report,) = scanner.scan([music])
    assert report.outcome is Outcome.TAGGED, report
    assert open_tags(track).read_genres() == ["techno"]
    if mode == "keep":
        assert open_tags(seed / track.name).read_genres() == ["techno"]
        assert track.stat().st_ino == (seed / track.name).stat().st_ino and track.stat().st_nlink == 2
    else:
        assert open_tags(seed / track.name).read_genres() == [] and track.stat().st_nlink == 1
    assert np.array_equal(decode(track), samples) and np.array_equal(decode(seed / track.name), samples)
