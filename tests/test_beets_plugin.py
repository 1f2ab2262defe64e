"""The beets plugin against a real beets library: `beet import -A`, `beet genretag`, `beet ls` as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.aggregate import aggregate
from tagger.model import Classifier, load_card
from tagger.pipeline import analyse_track
from tagger.tags import open_tags
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.mood_card import GENRE_MOODS, mood_card_path

pytest.importorskip("beets", reason="beets is not installed (the [beets] extra)")
pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]

PLUGIN_PATH = str(Path(__file__).resolve().parents[1])  # beetsplug/ of this checkout, found as a namespace package


def beet(beetsdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BEETSDIR": str(beetsdir),
        "PYTHONPATH": os.pathsep.join([PLUGIN_PATH, os.environ.get("PYTHONPATH", "")]),
        "TAGGER_DB": str(beetsdir / "unused-tagger.db"),  # the plugin must not need genre-tagger's database
        "HOME": str(beetsdir),
    }
    done = subprocess.run([sys.executable, "-m", "beets", *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def genres(beetsdir: Path) -> dict[str, str]:
    """file name -> `beet ls -f '$genres'` (beets 2.x's multi-valued genre field, joined by beets)."""
    listed = beet(beetsdir, "ls", "-f", "$path\t$genres").stdout
    return {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in listed.splitlines() if line}


def model_genre(path: Path) -> str:
    """What genre-tagger itself makes of ``path`` with the tiny model: the plugin must agree."""
    card = load_card(TINY_CARD)
    head = card.heads[card.default_head]
    return aggregate(analyse_track(path, Classifier(card)).probabilities[head.name], head).chosen[0]


def write_config(beetsdir: Path, music: Path, extra: str = "") -> None:
    (beetsdir / "config.yaml").write_text(
        f"directory: {music}\nlibrary: {beetsdir / 'library.db'}\nplugins: [genretag]\n"
        "import:\n  copy: no\n  write: no\n"
        f"genretag:\n  model: {TINY_CARD}\n{extra}"
    )


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path]:
    """A beets library of three generated files imported as they are; the owner tagged one "Chanson"."""
    music, beetsdir = tmp_path / "music", tmp_path / "beets"
    beetsdir.mkdir()
    owner = make_track(music / "owner.flac", genre="drone", seconds=5.0)
    open_tags(owner).write_genres(["Chanson"])
    make_track(music / "techno.mp3", genre="techno", seconds=5.0, seed=1)
    make_track(music / "chimes.ogg", genre="chimes", seconds=5.0, seed=2)
    write_config(beetsdir, music)
    beet(beetsdir, "import", "-A", "-q", str(music))
    assert genres(beetsdir) == {"owner.flac": "Chanson", "techno.mp3": "", "chimes.ogg": ""}
    return music, beetsdir


def test_genretag_sets_beets_genres_keeps_the_owners_and_beet_write_writes_them(library: tuple[Path, Path]) -> None:
    music, beetsdir = library
    files = {p.name: p.read_bytes() for p in music.iterdir()}
    expected = {name: model_genre(music / name) for name in ("techno.mp3", "chimes.ogg")}

    pretend = beet(beetsdir, "genretag", "--pretend").stdout
    assert pretend.count("would tag") == 2 and "kept" in pretend and "Chanson" in pretend
    assert genres(beetsdir) == {"owner.flac": "Chanson", "techno.mp3": "", "chimes.ogg": ""}  # nothing stored
    assert {p.name: p.read_bytes() for p in music.iterdir()} == files

    done = beet(beetsdir, "genretag").stdout
    assert done.count("tagged") == 2, done
    assert genres(beetsdir) == {"owner.flac": "Chanson", **expected}  # policy keep: the owner's genre stays
    assert {p.name: p.read_bytes() for p in music.iterdir()} == files  # import.write: no, so beets wrote no file
    confidence = beet(beetsdir, "ls", "-f", "$genretag_confidence", "techno").stdout.strip()
    assert 0 < float(confidence) <= 1
    in_range = beet(beetsdir, "ls", "-f", "$path", "genretag_confidence:0.01..1").stdout.splitlines()
    assert sorted(Path(p).name for p in in_range) == sorted(expected)  # a numeric field: range queries work

    again = beet(beetsdir, "genretag").stdout  # our own earlier genres are recognised: nothing to change
    assert "tagged" not in again and again.count("unchanged") == 2, again

    beet(beetsdir, "write")  # beets stays the source of truth: its own write puts the genres in the files
    assert {name: open_tags(music / name).read_genres() for name in expected} == {
        name: [genre] for name, genre in expected.items()
    }
    assert open_tags(music / "owner.flac").read_genres() == ["Chanson"]


def test_overwrite_a_genre_map_and_a_query(library: tuple[Path, Path], tmp_path: Path) -> None:
    music, beetsdir = library
    owner = model_genre(music / "owner.flac")
    extra = tmp_path / "overwrite.yaml"
    extra.write_text(f"genretag:\n  policy: overwrite\n  genre_map: {{{owner}: Ambient Drone}}\n")
    done = beet(beetsdir, "-c", str(extra), "genretag", "-w", f"path:{music / 'owner.flac'}")  # -w: write the file
    assert len(done.stdout.splitlines()) == 1 and "Chanson -> Ambient Drone" in done.stdout  # the query's one item
    listed = genres(beetsdir)
    assert listed["owner.flac"] == "Ambient Drone" and listed["techno.mp3"] == listed["chimes.ogg"] == ""
    assert open_tags(music / "owner.flac").read_genres() == ["Ambient Drone"]


def test_auto_tags_on_import(tmp_path: Path) -> None:
    music, beetsdir = tmp_path / "music", tmp_path / "beets"
    beetsdir.mkdir()
    make_track(music / "techno.flac", genre="techno", seconds=5.0)
    write_config(beetsdir, music, "  auto: yes\n")
    imported = beet(beetsdir, "import", "-A", "-q", str(music))
    assert "tagged" in imported.stdout, imported.stdout + imported.stderr
    assert genres(beetsdir) == {"techno.flac": model_genre(music / "techno.flac")}


def test_a_bad_option_is_one_line_and_changes_nothing(library: tuple[Path, Path], tmp_path: Path) -> None:
    _, beetsdir = library
    bad = tmp_path / "bad.yaml"
    bad.write_text("genretag:\n  policy: sometimes\n")
    done = beet(beetsdir, "-c", str(bad), "genretag", check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "configuration error: genretag.policy: must be one of ['keep', 'overwrite', 'merge'], not 'sometimes'"
    ]
    assert genres(beetsdir) == {"owner.flac": "Chanson", "techno.mp3": "", "chimes.ogg": ""}


def moods(beetsdir: Path) -> dict[str, str]:
    """file name -> `beet ls -f '$mood'` (a flexible field: "" where unset, which beets prints as "$mood")."""
    listed = beet(beetsdir, "ls", "-f", "$path\t$mood").stdout
    rows = (line.split("\t") for line in listed.splitlines() if line)
    return {Path(path).name: "" if mood == "$mood" else mood for path, mood in rows}


def test_with_a_mood_head_genretag_also_sets_beets_mood_field(library: tuple[Path, Path], tmp_path: Path) -> None:
    music, beetsdir = library
    card = mood_card_path(tmp_path / "model")
    beet(beetsdir, "modify", "-y", "mood=Calm", f"path:{music / 'owner.flac'}")  # the owner's own mood
    config = tmp_path / "moods.yaml"
    config.write_text(f"genretag:\n  model: {card}\n")
    off = tmp_path / "no-moods.yaml"
    off.write_text(f"genretag:\n  model: {card}\n  moods: no\n")
    beet(beetsdir, "-c", str(off), "genretag")
    assert moods(beetsdir) == {"owner.flac": "Calm", "techno.mp3": "", "chimes.ogg": ""}  # moods: no

    unsure = tmp_path / "unsure"
    unsure_config = tmp_path / "unsure.yaml"
    unsure_config.write_text(f"genretag:\n  model: {mood_card_path(unsure, abstain_below=0.99)}\n")
    abstained = beet(beetsdir, "-c", str(unsure_config), "genretag").stdout
    assert abstained.count("mood uncertain (") == 3, abstained
    assert moods(beetsdir) == {"owner.flac": "Calm", "techno.mp3": "", "chimes.ogg": ""}

    files = {p.name: p.read_bytes() for p in music.iterdir()}
    done = beet(beetsdir, "-c", str(config), "genretag").stdout
    assert "mood kept Calm" in done, done  # policy keep: the owner's mood stays
    assert moods(beetsdir) == {"owner.flac": "Calm", "techno.mp3": GENRE_MOODS["techno"], "chimes.ogg": "Happy"}
    assert {p.name: p.read_bytes() for p in music.iterdir()} == files  # stored in beets' library only
    assert "mood unchanged" in beet(beetsdir, "-c", str(config), "genretag").stdout  # our own mood: recognised

    overwrite = tmp_path / "overwrite.yaml"
    overwrite.write_text(f"genretag:\n  model: {card}\n  policy: overwrite\n")
    beet(beetsdir, "-c", str(overwrite), "genretag", f"path:{music / 'owner.flac'}")
    assert moods(beetsdir)["owner.flac"] == GENRE_MOODS["drone"] == "Sad"
