"""`tagger report`: what the files now contain (after the policy) apart from what the model proposed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from tagger.model import ModelCard
from tagger.policy import Policy
from tagger.record import Library, TagOptions
from tagger.report import build_report
from tagger.restore import restore
from tagger.scan import Scanner
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.store.db import migrations_dir
from tagger.store.queries import is_latest_result
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
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


def with_moods(database: Database, card: Path, owners: dict[str, list[str]], ours: set[str]) -> None:
    """Each classified track's latest result gets the moods classify computes for its file (the scan's own record
    of them lands with the moods runtime), and the MOOD fields: ``owners`` (file name -> the owner's moods), an
    applied write of ours for the names in ``ours``, not known for the others."""
    from tagger.classify import classify_file
    from tagger.config import Settings

    with database.session() as session:
        for track in session.scalars(select(Track).where(Track.status == TrackStatus.DONE)):
            found = classify_file(Path(track.path), Settings(model=str(card)), 1).moods
            assert found is not None
            result = session.scalars(select(Result).where(Result.track_id == track.id, is_latest_result())).one()
            result.moods = found.to_dict()
            name = Path(track.path).name
            if name in owners:
                track.file_moods = owners[name]
            elif name in ours:
                track.file_moods = list(found.decision.chosen)
                session.add(
                    TagWrite(
                        track_id=track.id, result_id=result.id, role="mood", field="MOOD", previous=[],
                        new=track.file_moods, status=TagWriteStatus.APPLIED,
                    )
                )  # fmt: skip
        session.commit()


def test_report_counts_the_moods_in_the_files_and_the_proposed_ones_apart(
    music: Path, database: Database, tmp_path: Path
) -> None:
    card = mood_card_path(tmp_path / "model")
    scan(database, ModelCard.load(card), music)
    before = build_report(database)
    assert before.moods == [] and before.proposed_moods == [] and before.no_mood == before.moods_uncertain == 0
    with_moods(database, card, {"owner.flac": ["Melancholy"]}, {"plain.ogg"})
    report = build_report(database)
    # owner.flac is techno (Aggressive), plain.ogg drone (Sad), plain.mp3 chimes (Happy)
    assert sorted((r.mood, r.tracks, r.share) for r in report.proposed_moods) == [
        ("Aggressive", 1, 1 / 3), ("Happy", 1, 1 / 3), ("Sad", 1, 1 / 3)
    ]  # fmt: skip
    assert all(0.9 < r.mean_confidence < 1.0 for r in report.proposed_moods) and report.moods_uncertain == 0
    assert [(r.mood, r.tracks, r.share, r.ours) for r in report.moods] == [
        ("Melancholy", 1, 0.5, 0),
        ("Sad", 1, 0.5, 1),
    ]
    assert report.no_mood == 0
    # The mood write is not a genre write: the genres in the files are as before.
    assert report.genres == before.genres and report.proposed == before.proposed
    data = json.loads(json.dumps(report.to_dict()))
    assert data["proposed_moods"] == [
        {"mood": r.mood, "tracks": r.tracks, "share": r.share, "mean_confidence": r.mean_confidence}
        for r in report.proposed_moods
    ]

    with database.session() as session:  # the head abstains on one track; another's MOOD field is empty
        for result in session.scalars(select(Result)):
            if result.moods is not None and result.moods["chosen"] == ["Happy"]:
                result.moods = {**result.moods, "chosen": [], "abstained": True, "confident": False}
        for track in session.scalars(select(Track).where(Track.path.endswith("plain.mp3"))):
            track.file_moods = []
        session.commit()
    after = build_report(database)
    assert sorted(r.mood for r in after.proposed_moods) == ["Aggressive", "Sad"] and after.moods_uncertain == 1
    assert after.proposed_moods[0].share == pytest.approx(1 / 3)  # of the tracks with moods computed
    assert after.no_mood == 1 and [r.share for r in after.moods] == [pytest.approx(1 / 3)] * 2


def test_report_prints_the_mood_tables(music: Path, database: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tagger.cli import app

    card = mood_card_path(tmp_path / "model")
    scan(database, ModelCard.load(card), music)
    runner = CliRunner()
    plain = runner.invoke(
        app, ["report", "--db", str(tmp_path / "state" / "tagger.db"), "--config", str(tmp_path / "no.toml")]
    )
    assert plain.exit_code == 0, plain.output
    assert "moods" not in plain.output  # nothing about moods where none were computed
    with_moods(database, card, {"owner.flac": ["Melancholy"]}, {"plain.ogg"})
    shown = runner.invoke(
        app, ["report", "--db", str(tmp_path / "state" / "tagger.db"), "--config", str(tmp_path / "no.toml")]
    )
    assert shown.exit_code == 0, shown.output
    assert "moods in the files now (0 with none)" in shown.output
    assert "moods the model proposed (0 uncertain)" in shown.output
    melancholy, aggressive = ([ln for ln in shown.output.splitlines() if m in ln] for m in ("Melancholy", "Aggressive"))
    assert len(melancholy) == len(aggressive) == 1 and "50.0%" in melancholy[0] and "33.3%" in aggressive[0]
