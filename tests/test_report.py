"""`tagger report`: what the files now contain (after the policy) apart from what the model proposed."""

from __future__ import annotations

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
