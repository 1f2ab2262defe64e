"""``tagger learn`` on the library layouts people have: flat, one folder per genre, one per album.

Real FLAC files from the synthetic genres, real scans with the tiny fixture model, the CLI as a
user runs it. Per genre, 12 tracks by 3 "artists" (4 tracks each); every other track carries the
owner's genre tag, so each genre has 6 tagged tracks over 3 artists, and 6 untagged to tag.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC
from typer.testing import CliRunner

from tagger.cli import app
from tagger.learn import LabelFigures, Learned, save_vocabulary
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database
from tagger.tags import open_tags
from tagger.tags.grouping import Grouping, read_grouping
from tagger.train.synthetic import RECIPES
from tagger.vocabulary import EmbeddingHead, vocabularies_dir
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

GENRES = {"drone": "Drone", "techno": "Techno", "chimes": "Chimes"}
TRACKS = 12
PER_ARTIST = 4

# (genre, n) -> where the track goes, relative to the library root
Layout = Callable[[str, int], str]
LAYOUTS: dict[str, Layout] = {
    "flat": lambda genre, n: f"{genre} artist {n // PER_ARTIST} - {n:02d}.flac",
    "genre folders": lambda genre, n: f"{GENRES[genre]}/{genre} artist {n // PER_ARTIST} - {n:02d}.flac",
    "album folders": lambda genre, n: f"{genre} artist {n // PER_ARTIST}/album/{n:02d}.flac",
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """The audio, rendered once; each test copies it into its layout."""
    root = tmp_path_factory.mktemp("layout-clips")
    return {
        (genre, n): make_track(
            root / f"{genre}{n:02d}.flac",
            genre=genre,
            seconds=3.0,
            sample_rate=16000,
            seed=500 * sorted(RECIPES).index(genre) + n,
        )
        for genre in GENRES
        for n in range(TRACKS)
    }


def _library(clips: dict[tuple[str, int], Path], root: Path, layout: str, tags: str) -> dict[Path, tuple[str, bool]]:
    """Copy the clips into ``layout``; tag every other one with its genre and ``tags`` (none/artist/album)."""
    out: dict[Path, tuple[str, bool]] = {}
    for (genre, n), source in clips.items():
        path = root / LAYOUTS[layout](genre, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        tagged = n % 2 == 0
        if tagged:
            flac = FLAC(path)
            flac["GENRE"] = [GENRES[genre]]
            if tags in ("artist", "album"):
                flac["ARTIST"] = [f"{genre} artist {n // PER_ARTIST}"]
            if tags == "album":
                flac["ALBUM"] = ["Greatest Hits"]  # the same title by every artist: the album artist tells them apart
                flac["ALBUMARTIST"] = [f"{genre} artist {n // PER_ARTIST}"]
            flac.save()
        out[path] = (genre, tagged)
    return out


def _scan(database: Database, card: ModelCard, root: Path, vocabulary: str | None = None) -> ScanSummary:
    summary = ScanSummary()
    with Scanner(Library(database, card, TagOptions(vocabulary=vocabulary))) as scanner:
        for report in scanner.scan([root]):
            summary.add(report)
    assert not summary.failures
    return summary


def _learn(db_path: Path, root: Path, *extra: str) -> tuple[int, dict, str]:
    args = ["learn", str(root), "--db", str(db_path), "--model", str(TINY_CARD), "--min-tracks", "4", *extra]
    human = CliRunner().invoke(app, args, catch_exceptions=False)
    as_json = CliRunner().invoke(app, [*args, "--dry-run", "--json"], catch_exceptions=False)
    return human.exit_code, json.loads(as_json.stdout) if as_json.exit_code == 0 else {}, human.output


@pytest.mark.model
@pytest.mark.parametrize(
    ("layout", "tags", "grouping"),
    [
        ("flat", "artist", "artist"),
        ("flat", "album", "album"),
        ("genre folders", "artist", "artist"),
        ("album folders", "none", "folder"),
    ],
)
def test_learn_tags_the_untagged_half_of_any_layout(
    clips: dict[tuple[str, int], Path], tmp_path: Path, tiny_card: ModelCard, layout: str, tags: str, grouping: str
) -> None:
    root, db_path = tmp_path / "music", tmp_path / "state" / "tagger.db"
    library = _library(clips, root, layout, tags)
    database = Database(db_path)
    _scan(database, tiny_card, root)
    owners = {path: path.read_bytes() for path, (_, tagged) in library.items() if tagged}

    code, summary, output = _learn(db_path, root)
    assert code == 0, output
    learned = {f["label"]: f for f in summary["learned"]}
    assert set(learned) == set(GENRES), summary
    for figures in learned.values():
        assert figures["grouping"] == grouping and figures["groups"] == 3 and not figures["optimistic"], figures
        assert figures["f1"] >= 0.8, figures
        one_folder = layout == "genre folders"  # every Drone track in Drone/: the figure is about its artists
        assert ("all its tracks are in" in figures["note"]) == one_folder, figures
    assert summary["grouped_by"] == {grouping: 3 * TRACKS // 2}
    assert f"3 {grouping}" in output and "optimistic" not in output
    if layout == "genre folders":
        assert "Drone: all its tracks are in" in output

    _scan(database, tiny_card, root, vocabulary="mine")
    untagged = [(path, genre) for path, (genre, tagged) in library.items() if not tagged]
    right = sum(open_tags(path).read_genres() == [GENRES[genre]] for path, genre in untagged)
    assert right >= 0.8 * len(untagged), {str(p): open_tags(p).read_genres() for p, _ in untagged}
    for path, data in owners.items():
        assert path.read_bytes() == data, path


@pytest.mark.model
@pytest.mark.parametrize("layout", ["flat", "genre folders"])
def test_a_label_no_grouping_can_split_is_still_learned_and_marked_optimistic(
    clips: dict[tuple[str, int], Path], tmp_path: Path, tiny_card: ModelCard, layout: str
) -> None:
    """No album or artist tags: each genre's tracks share one folder, the only grouping left."""
    root, db_path = tmp_path / "music", tmp_path / "state" / "tagger.db"
    _library(clips, root, layout, "none")
    _scan(Database(db_path), tiny_card, root)
    code, summary, output = _learn(db_path, root)
    assert code == 0, output
    learned = {f["label"]: f for f in summary["learned"]}
    assert set(learned) == set(GENRES), summary
    for figures in learned.values():
        assert figures["optimistic"] and figures["grouping"] == "track" and figures["groups"] == 6, figures
        assert figures["note"].startswith("untested: all 6 tracks share one folder"), figures
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in output.splitlines()]
    assert ["Drone", "6", "optimistic"] in rows and "Drone: untested" in output
    assert output.count("learned genres: mine") == 1 and output.count("Drone: untested") == 1
    card = json.loads((vocabularies_dir(f"sqlite:///{db_path}") / "mine.json").read_text())
    assert all(f["optimistic"] for f in card["evaluation"]["labels"])


@pytest.mark.model
def test_dry_run_shows_each_label_and_writes_nothing_and_refusals_say_what_to_do(
    clips: dict[tuple[str, int], Path], tmp_path: Path, tiny_card: ModelCard
) -> None:
    root, db_path = tmp_path / "music", tmp_path / "state" / "tagger.db"
    _library(clips, root, "flat", "artist")
    _scan(Database(db_path), tiny_card, root)
    before = {p: p.read_bytes() for p in root.rglob("*.flac")}
    args = ["learn", str(root), "--db", str(db_path), "--model", str(TINY_CARD), "--min-tracks", "4", "--dry-run"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for genre in GENRES.values():  # genre, tracks, groups, grouping, figures
        rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in result.stdout.splitlines()]
        assert [genre, "6", "3 artist"] in rows, result.stdout
    assert "--dry-run: nothing saved" in result.output
    assert not vocabularies_dir(f"sqlite:///{db_path}").exists()
    assert {p: p.read_bytes() for p in before} == before

    refused = CliRunner().invoke(app, [*args[:-3], "--min-tracks", "7"], catch_exceptions=False)
    assert refused.exit_code == 1
    text = " ".join(refused.stdout.replace("│", " ").split())  # the reasons, unwrapped from their table cells
    assert "6 tracks (fewer than 7): tag more tracks, or lower --min-tracks" in text
    assert "nothing learned" in refused.output and "grouped by artist (18 tracks)" in refused.output
    floor = CliRunner().invoke(app, [*args, "--f1-floor", "1.0", "--json"], catch_exceptions=False)
    below = [f for f in json.loads(floor.stdout)["refused"] if f["f1"] is not None]
    assert all(f["refused"].endswith("(grouped by artist): tag more tracks, or lower --f1-floor") for f in below)
    assert len(below) + len(json.loads(floor.stdout)["learned"]) == len(GENRES)


def test_read_grouping_reads_album_album_artist_and_artist(clips: dict[tuple[str, int], Path], tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    shutil.copyfile(clips["drone", 0], path)
    assert read_grouping(path) == Grouping()
    flac = FLAC(path)
    flac["album"] = ["  Greatest   Hits "]
    flac["Album Artist"] = ["Various"]
    flac["ARTIST"] = ["", "Someone"]
    flac.save()
    assert read_grouping(path) == Grouping("Greatest Hits", "Various", "Someone")


@pytest.mark.model
@pytest.mark.parametrize("command", ["classify", "scan"])
def test_a_vocabulary_learned_with_an_older_model_is_refused_naming_the_model_it_needs(
    clips: dict[tuple[str, int], Path], tmp_path: Path, tiny_card: ModelCard, command: str
) -> None:
    db_path = tmp_path / "state" / "tagger.db"
    head = EmbeddingHead(np.zeros(8), np.ones(8), np.ones((1, 8)), np.zeros(1))
    figures = [LabelFigures("drone", "Drone", 30, 5, 0.9, 0.8, 0.85, 0.05, 0.4)]
    older = Learned("mine", "tiny@0", "genre", 20, 0.5, figures, tracks=30, folds=5, dims=8, head=head)
    save_vocabulary(older, vocabularies_dir(f"sqlite:///{db_path}"))
    track = tmp_path / "music" / "a.flac"
    track.parent.mkdir()
    shutil.copyfile(clips["drone", 0], track)
    before = track.read_bytes()
    target = str(track if command == "classify" else track.parent)
    args = [command, target, "--db", str(db_path), "--model", str(TINY_CARD), "--vocabulary", "mine"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "learned on embeddings of tiny@0, and this model is tiny@1" in result.output
    assert isinstance(result.exception, SystemExit)  # one line and exit 1, not a traceback
    assert track.read_bytes() == before
