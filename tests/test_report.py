"""`tagger report`: what the files now contain (after the policy) apart from what the model proposed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from tagger.model import ModelCard
from tagger.policy import Policy
from tagger.record import Library, TagOptions
from tagger.report import build_report
from tagger.restore import restore
from tagger.scan import Scanner
from tagger.store import Database
from tagger.store.db import migrations_dir
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.mood_card import mood_card_path

pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]


def scan(database: Database, card: ModelCard, root: Path) -> dict[str, Outcome]:
    library = Library(database, card, TagOptions(policy=Policy.KEEP))
    with Scanner(library, isolate=False) as scanner:
        return {report.path.name: report.outcome for report in scanner.scan([root])}


@pytest.fixture
def music(tmp_path: Path) -> Path:
    """Two folders: the owner tagged one track "Chanson"; the others carry no genre."""
    root = tmp_path / "music"
    open_tags(make_track(root / "owned" / "owner.flac", genre="techno", seconds=4.0)).write_genres(["Chanson"])
    make_track(root / "owned" / "plain.ogg", genre="drone", seconds=4.0, seed=1)
    make_track(root / "new" / "plain.mp3", genre="chimes", seconds=4.0, seed=2)
    return root


def test_report_counts_the_owners_kept_genre_and_the_models_proposal_apart(
    music: Path, database: Database, tiny_card: ModelCard
) -> None:
    outcomes = scan(database, tiny_card, music)
    assert outcomes == {"owner.flac": Outcome.KEPT, "plain.ogg": Outcome.TAGGED, "plain.mp3": Outcome.TAGGED}
    in_files = {p.relative_to(music).as_posix(): open_tags(p).read_genres()[0] for p in music.rglob("*.*")}
    assert in_files["owned/owner.flac"] == "Chanson"

    report = build_report(database)
    expected: dict[str, int] = {}
    for genre in in_files.values():
        expected[genre] = expected.get(genre, 0) + 1
    assert {row.genre: row.tracks for row in report.genres} == expected  # what the files say, Chanson included
    assert {row.genre: row.ours for row in report.genres}["Chanson"] == 0  # the owner's, not ours
    assert sum(row.ours for row in report.genres) == 2
    assert sum(row.share for row in report.genres) == pytest.approx(1.0) and report.no_genre == 0
    assert "Chanson" not in {row.genre for row in report.proposed}  # the model never proposes it
    assert sum(row.tracks for row in report.proposed) == report.classified == 3
    assert sum(report.confidence_histogram) == 3
    assert report.folders["owned"]["Chanson"] == 1 and sum(report.folders["new"].values()) == 1

    restore(database)  # our two writes taken back: those files carry no genre now, the owner's stays
    after = build_report(database)
    assert [(row.genre, row.tracks) for row in after.genres] == [("Chanson", 1)]
    assert after.no_genre == 2 and after.genres[0].share == pytest.approx(1 / 3)
    assert {row.genre: row.tracks for row in after.proposed} == {row.genre: row.tracks for row in report.proposed}


def test_a_0003_database_is_upgraded_and_its_report_falls_back_to_the_writes(
    music: Path, tmp_path: Path, tiny_card: ModelCard
) -> None:
    """Rows from before file_genres: our applied write, else the owner's genres recorded at the scan."""
    path = tmp_path / "old.db"
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(config, "0003_decided_with")
    database = Database(path)  # upgraded to head on open
    scan(database, tiny_card, music)
    fresh = build_report(database)
    with sqlite3.connect(path) as connection:
        assert connection.execute("update tracks set file_genres = null").rowcount == 3  # as a 0003 scan left them
    old = build_report(database)
    assert old.genres == fresh.genres and old.proposed == fresh.proposed
    assert {row.genre for row in old.genres} >= {"Chanson"}


def test_report_counts_the_moods_in_the_files_and_the_proposed_ones_apart(
    music: Path, database: Database, tmp_path: Path
) -> None:
    before = build_report(database)
    assert before.moods == [] and before.proposed_moods == [] and before.no_mood == before.moods_uncertain == 0
    open_tags(music / "owned" / "owner.flac").write({"mood": ["Melancholy"]})  # the owner's own mood: kept
    card = ModelCard.load(mood_card_path(tmp_path / "model"))
    scan(database, card, music)
    report = build_report(database)
    # owner.flac is techno (Aggressive), plain.ogg drone (Sad), plain.mp3 chimes (Happy)
    assert sorted((r.mood, r.tracks, r.share) for r in report.proposed_moods) == [
        ("Aggressive", 1, 1 / 3), ("Happy", 1, 1 / 3), ("Sad", 1, 1 / 3)
    ]  # fmt: skip
    assert all(0.9 < r.mean_confidence < 1.0 for r in report.proposed_moods) and report.moods_uncertain == 0
    in_files = {p.name: open_tags(p).read("mood") for p in music.rglob("*.*")}
    assert in_files == {"owner.flac": ["Melancholy"], "plain.ogg": ["Sad"], "plain.mp3": ["Happy"]}
    assert sorted((r.mood, r.tracks, r.share, r.ours) for r in report.moods) == [
        ("Happy", 1, 1 / 3, 1), ("Melancholy", 1, 1 / 3, 0), ("Sad", 1, 1 / 3, 1)
    ]  # fmt: skip
    assert report.no_mood == 0
    # The mood writes are not genre writes: the genres count as a scan without moods would have them.
    assert {r.genre: (r.tracks, r.ours) for r in report.genres} == {
        "Chanson": (1, 0),
        "drone": (1, 1),
        "chimes": (1, 1),
    }
    data = json.loads(json.dumps(report.to_dict()))
    assert data["proposed_moods"] == [
        {"mood": r.mood, "tracks": r.tracks, "share": r.share, "mean_confidence": r.mean_confidence}
        for r in report.proposed_moods
    ]

    restore(database)  # our writes taken back, genre and mood: those files carry no mood now, the owner's stays
    after = build_report(database)
    assert [(r.mood, r.tracks, r.ours) for r in after.moods] == [("Melancholy", 1, 0)] and after.no_mood == 2
    assert after.proposed_moods == report.proposed_moods


def test_report_counts_the_tracks_whose_mood_head_abstained(music: Path, tmp_path: Path) -> None:
    database = Database(tmp_path / "abstain.db")
    scan(database, ModelCard.load(mood_card_path(tmp_path / "model", abstain_below=0.99)), music)
    report = build_report(database)
    assert report.proposed_moods == [] and report.moods_uncertain == 3
    assert report.moods == [] and report.no_mood == 3  # nothing written: the MOOD fields stay empty


def test_report_prints_the_mood_tables(music: Path, database: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tagger.cli import app

    def report(db: Path) -> str:
        done = CliRunner().invoke(app, ["report", "--db", str(db), "--config", str(tmp_path / "no.toml")])
        assert done.exit_code == 0, done.output
        return done.output

    scan(Database(tmp_path / "genres-only.db"), ModelCard.load(TINY_CARD), music)
    assert "mood" not in report(tmp_path / "genres-only.db")  # nothing about moods where none were computed
    scan(database, ModelCard.load(mood_card_path(tmp_path / "model")), music)  # a second database: all decoded
    shown = report(tmp_path / "state" / "tagger.db")
    assert "moods in the files now (0 with none)" in shown
    assert "moods the model proposed (0 uncertain)" in shown
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in shown.splitlines() if ln.startswith("│")]
    # Each mood once in the files (written by us) and once proposed (with its mean confidence).
    assert [r for r in rows if r[0] == "Sad"] == [["Sad", "1", "33.3%", "1"], ["Sad", "1", "33.3%", "0.95"]]
    assert [r for r in rows if r[0] == "Happy"] == [["Happy", "1", "33.3%", "1"], ["Happy", "1", "33.3%", "0.95"]]
