"""Moods written by the scan beside the genre: the MOOD field of every format, the policies, --no-moods, restore,
a crash between the pending and the applied write, rescans. Real files, the tiny model with a mood head
(tests/mood_card.py), real databases (a SQLite file, PostgreSQL and MariaDB where the store is involved)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mutagen.asf import ASF, ASFByteArrayAttribute
from sqlalchemy import func, select
from typer.testing import CliRunner

from tagger.cli import app
from tagger.model import ModelCard
from tagger.policy import Policy
from tagger.record import Library, TagOptions
from tagger.restore import restore
from tagger.scan import Scanner
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import ALL_EXTENSIONS, make_track
from tests.mood_card import GENRE_MOODS, mood_card, mood_card_path
from tests.no_decoding import forbid_decoding
from tests.test_scan import run_scan

pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]

# The design's MOOD field per format (a new ID3 tag is v2.4 by default: TMOO).
MOOD_FIELDS = {".wav": "TMOO", ".aiff": "TMOO", ".mp3": "TMOO", ".flac": "MOOD", ".ogg": "MOOD", ".opus": "MOOD",
               ".m4a": "----:com.apple.iTunes:MOOD", ".wma": "WM/Mood"}  # fmt: skip


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return mood_card(tmp_path_factory.mktemp("card"))


@pytest.fixture
def database(any_database: Database) -> Database:
    return any_database


def one_track(tmp_path: Path, name: str = "a.flac", genre: str = "chimes") -> Path:
    return make_track(tmp_path / "music" / name, genre=genre, seconds=4.0)


def writes(database: Database) -> list[tuple[str, str, list[str], list[str], str]]:
    with database.session() as session:
        rows = session.execute(
            select(TagWrite.role, TagWrite.field, TagWrite.previous, TagWrite.new, TagWrite.status).order_by(
                TagWrite.id
            )
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_scan_writes_genre_and_mood_into_every_format(
    library_copy: Path, tmp_path: Path, card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(tmp_path / "state" / "tagger.db")
    first = run_scan(database, card, library_copy)
    assert first.counts == {Outcome.TAGGED: len(ALL_EXTENSIONS)}, first.failures
    assert first.mood_counts == {Outcome.TAGGED: len(ALL_EXTENSIONS)}
    for path in sorted(library_copy.iterdir()):
        genre = path.name.split("-")[0]
        tags = open_tags(path)
        assert tags.read("genre") == [genre] and tags.read("mood") == [GENRE_MOODS[genre]], path.name
        assert tags.field_name("mood") == MOOD_FIELDS[path.suffix], path.name
    with database.session() as session:
        tracks = session.scalars(select(Track)).all()
        for track in tracks:
            genre = Path(track.path).name.split("-")[0]
            assert track.file_moods == [GENRE_MOODS[genre]] and track.user_moods == [] and track.file_genres == [genre]
            by_role = {write.role: write for write in track.tag_writes}
            assert set(by_role) == {"genre", "mood"} and len(track.tag_writes) == 2
            assert by_role["mood"].field == MOOD_FIELDS[Path(track.path).suffix]
            assert by_role["mood"].new == [GENRE_MOODS[genre]] and by_role["mood"].previous == []
            assert {write.status for write in track.tag_writes} == {TagWriteStatus.APPLIED}
            (result,) = track.results
            assert result.moods is not None and result.moods["vocabulary"] == "moods"
            assert result.moods["chosen"] == [GENRE_MOODS[genre]] and result.moods["confident"]
            assert sum(result.moods["scores"].values()) == pytest.approx(1.0, abs=1e-4)
            assert len(result.moods["ranked"]) == 4 and result.moods["ranked"][0]["mood"] == GENRE_MOODS[genre]
            quadrant = result.moods["ranked"][0]["label"]
            # Q1 positive and energetic ... Q4 positive and calm: the axes' signs follow the quadrant.
            assert (result.moods["valence"] > 0) == (quadrant in ("Q1", "Q4"))
            assert (result.moods["arousal"] > 0) == (quadrant in ("Q1", "Q2"))
    forbid_decoding(monkeypatch)
    again = run_scan(database, card, library_copy)
    assert again.counts == {Outcome.SKIPPED: len(ALL_EXTENSIONS)} and not again.mood_counts


def test_an_id3v23_tag_gets_its_mood_in_txxx_mood(tmp_path: Path, card: ModelCard) -> None:
    path = one_track(tmp_path, "old.mp3")
    database = Database(tmp_path / "v23.db")
    summary = run_scan(database, card, path.parent, id3_version=3, verify=True)
    assert summary.mood_counts == {Outcome.TAGGED: 1}, summary.failures
    tags = open_tags(path)
    assert tags.field_name("mood") == "TXXX:MOOD" and tags.read("mood") == ["Happy"]
    assert [(role, field) for role, field, *_ in writes(database)] == [("genre", "TCON"), ("mood", "TXXX:MOOD")]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(Policy.KEEP, ["Chill"]), (Policy.OVERWRITE, ["Happy"]), (Policy.MERGE, ["Chill", "Happy"])],
)
def test_the_policy_decides_an_owners_mood(
    tmp_path: Path, database: Database, card: ModelCard, policy: Policy, expected: list[str]
) -> None:
    path = one_track(tmp_path, "a.mp3")  # chimes: Happy
    open_tags(path).write({"mood": ["Chill"]})
    summary = run_scan(database, card, tmp_path / "music", policy=policy)
    tags = open_tags(path)
    assert tags.read("mood") == expected and tags.read("genre") == ["chimes"]  # no owner's genre: ours
    assert summary.mood_counts == {(Outcome.KEPT if policy is Policy.KEEP else Outcome.TAGGED): 1}
    assert summary.counts == {Outcome.TAGGED: 1}
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None and track.user_moods == ["Chill"] and track.file_moods == expected
    roles = [(role, previous, new) for role, _, previous, new, _ in writes(database)]
    assert ("mood", ["Chill"], expected) in roles or policy is Policy.KEEP
    assert [role for role, *_ in roles] == (["genre"] if policy is Policy.KEEP else ["genre", "mood"])


def test_no_moods_leaves_the_mood_field_alone(tmp_path: Path, database: Database, card: ModelCard) -> None:
    owned = one_track(tmp_path, "owned.flac")
    bare = one_track(tmp_path, "bare.ogg", genre="drone")
    open_tags(owned).write({"mood": ["Chill"]})
    summary = run_scan(database, card, tmp_path / "music", moods=False)
    assert summary.counts == {Outcome.TAGGED: 2} and not summary.mood_counts
    assert open_tags(owned).read("mood") == ["Chill"] and open_tags(bare).read("mood") == []
    assert open_tags(bare).read("genre") == ["drone"]
    assert {role for role, *_ in writes(database)} == {"genre"}
    with database.session() as session:
        assert set(session.scalars(select(Result.moods))) == {None}
        users = dict(session.execute(select(Track.path, Track.user_moods)).tuples().all())
        assert users == {str(owned): ["Chill"], str(bare): []}  # read all the same, for `tagger learn`


def test_a_track_can_get_its_mood_but_not_its_genre_and_the_other_way_round(tmp_path: Path, database: Database) -> None:
    path = one_track(tmp_path)
    sure = mood_card(tmp_path / "sure")
    summary = run_scan(database, sure, tmp_path / "music", min_confidence=1.0)  # the genre is never that sure
    assert summary.counts == {Outcome.LOW_CONFIDENCE: 1} and summary.mood_counts == {Outcome.TAGGED: 1}
    assert open_tags(path).read("genre") == [] and open_tags(path).read("mood") == ["Happy"]
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None and track.status == TrackStatus.DONE and track.error is None

    other = one_track(tmp_path / "2")
    unsure = mood_card(tmp_path / "unsure", abstain_below=0.99)  # 0.948 at best: the mood abstains
    library = Library(Database(tmp_path / "unsure.db"), unsure)
    with Scanner(library, isolate=False) as scanner:
        (report,) = scanner.scan([other.parent])
    assert report.outcome is Outcome.TAGGED and report.mood is not None
    assert report.mood.outcome is Outcome.LOW_CONFIDENCE and report.mood.reason.startswith("uncertain: Happy 0.9")
    assert open_tags(other).read("genre") == ["chimes"] and open_tags(other).read("mood") == []
    with library.db.session() as session:
        moods = session.scalar(select(Result.moods))
        assert moods is not None and moods["abstained"] and moods["chosen"] == []


def test_a_mood_that_cannot_be_read_fails_the_mood_and_the_genre_is_still_written(
    tmp_path: Path, card: ModelCard
) -> None:
    """A binary WM/Mood cannot be recorded, so it is not replaced; the track's genre is written all the same."""
    path = one_track(tmp_path, name="a.wma")
    audio = ASF(path)
    audio.tags["WM/Mood"] = [ASFByteArrayAttribute(b"\x00\x01binary")]
    audio.save()
    summary = run_scan(Database(tmp_path / "db.sqlite"), card, tmp_path / "music")
    assert summary.counts == {Outcome.TAGGED: 1} and summary.mood_counts == {Outcome.FAILED: 1}
    assert open_tags(path).read("genre") == ["chimes"]
    assert [bytes(value.value) for value in ASF(path).tags["WM/Mood"]] == [b"\x00\x01binary"]
    (report,) = summary.changes
    assert report.mood is not None and "cannot read its mood" in report.mood.reason


def test_dry_run_writes_nothing_and_says_what_it_would(tmp_path: Path, card: ModelCard) -> None:
    path = one_track(tmp_path)
    before = path.read_bytes()
    database = Database(tmp_path / "dry.db")
    library = Library(database, card, TagOptions(dry_run=True))
    with Scanner(library, isolate=False) as scanner:
        (report,) = scanner.scan([path.parent])
    assert report.outcome is Outcome.WOULD_TAG and report.mood is not None
    assert report.mood.outcome is Outcome.WOULD_TAG and report.mood.proposed == ["Happy"]
    assert path.read_bytes() == before
    with database.session() as session:
        assert session.scalar(select(Track)) is None


def test_restore_puts_back_both_and_each_role_is_checked_on_its_own(
    tmp_path: Path, database: Database, card: ModelCard
) -> None:
    first = one_track(tmp_path, "a.m4a")
    second = one_track(tmp_path, "b.wma", genre="drone")
    for path in (first, second):
        open_tags(path).write({"genre": ["Chanson"], "mood": ["Chill"]})
    run_scan(database, card, tmp_path / "music", policy=Policy.OVERWRITE)
    assert open_tags(first).read("mood") == ["Happy"] and open_tags(second).read("mood") == ["Sad"]
    open_tags(second).write({"mood": ["Mine"]})  # the owner changed the mood since: only the genre goes back
    reports = {report.path.name: report for report in restore(database)}
    assert [(r.role, r.restored, r.values) for r in reports["a.m4a"].roles] == [
        ("genre", True, ["Chanson"]), ("mood", True, ["Chill"])
    ]  # fmt: skip
    assert reports["a.m4a"].restored and reports["a.m4a"].moods == ["Chill"] and not reports["a.m4a"].reason
    assert open_tags(first).read("genre") == ["Chanson"] and open_tags(first).read("mood") == ["Chill"]
    assert reports["b.wma"].restored and "mood changed since our write" in reports["b.wma"].reason
    assert open_tags(second).read("genre") == ["Chanson"] and open_tags(second).read("mood") == ["Mine"]
    statuses = {(Path(p).name, role): status for p, role, status in _write_statuses(database)}
    assert statuses == {("a.m4a", "genre"): "restored", ("a.m4a", "mood"): "restored",
                        ("b.wma", "genre"): "restored", ("b.wma", "mood"): "applied"}  # fmt: skip
    with database.session() as session:
        files = dict(session.execute(select(Track.path, Track.file_moods)).tuples().all())
        assert files[str(first)] == ["Chill"]


def _write_statuses(database: Database) -> list[tuple[str, str, str]]:
    with database.session() as session:
        return [tuple(r) for r in session.execute(select(Track.path, TagWrite.role, TagWrite.status).join(TagWrite))]  # type: ignore[misc]


CRASHING_SCAN = """if True:
    import os, sys
    from pathlib import Path
    from tagger.model import ModelCard
    from tagger.record import Library
    from tagger.scan import Scanner
    from tagger.store import Database
    from tagger.tags.base import GenreTags

    write = GenreTags.write

    def crash(self, changes):  # SIGKILL-like: no cleanup, no commit
        if sys.argv[3] == "after":
            write(self, changes)
        os._exit(9)

    GenreTags.write = crash
    library = Library(Database(sys.argv[1]), ModelCard.load(sys.argv[2]))
    with Scanner(library, isolate=False) as scanner:
        list(scanner.scan([sys.argv[4]]))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_between_the_pending_and_the_applied_write_is_recovered_for_both_roles(
    tmp_path: Path, db_url: str, when: str
) -> None:
    path = one_track(tmp_path, "a.opus")
    card_path = mood_card_path(tmp_path / "card")
    crashed = subprocess.run([sys.executable, "-c", CRASHING_SCAN, db_url, str(card_path), when,
                              str(path.parent)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    database = Database(db_url)
    assert {(role, status) for role, _, _, _, status in writes(database)} == {("genre", "pending"), ("mood", "pending")}
    written = when == "after"
    assert open_tags(path).read("mood") == (["Happy"] if written else [])
    assert open_tags(path).read("genre") == (["chimes"] if written else [])
    card = ModelCard.load(card_path)
    assert Library(database, card).recover() == 1  # one track, both of its writes
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None
        assert track.status == (TrackStatus.DONE if written else TrackStatus.PENDING)
        assert track.file_moods == (["Happy"] if written else [])
    assert {status for *_, status in writes(database)} == ({"applied"} if written else set())
    again = run_scan(database, card, path.parent)
    if written:  # finished: nothing left to do
        assert again.counts == {Outcome.SKIPPED: 1}
    else:  # redone: classified and written again, both roles
        assert again.counts == {Outcome.TAGGED: 1} and again.mood_counts == {Outcome.TAGGED: 1}
    assert open_tags(path).read("mood") == ["Happy"] and open_tags(path).read("genre") == ["chimes"]
    assert [(role, status) for role, _, _, _, status in writes(database)] == [("genre", "applied"), ("mood", "applied")]
    database.dispose()


def test_results_without_mood_scores_get_their_moods_once_when_the_model_gains_a_mood_head(
    tmp_path: Path, database: Database
) -> None:
    """What an upgrade does: a library scanned before moods (no mood head, or rows older than 0005) is classified
    once more by the next scan, which writes the moods, and skipped after that."""
    path = one_track(tmp_path, genre="techno")
    without = ModelCard.load(mood_card_path(tmp_path / "cards", without_mood_head=True))
    with_moods = ModelCard.load(mood_card_path(tmp_path / "cards"))
    assert without.model_id == with_moods.model_id
    first = run_scan(database, without, tmp_path / "music")
    assert first.counts == {Outcome.TAGGED: 1} and not first.mood_counts
    with database.session() as session:  # stored as SQL NULL, like the rows the 0005 migration adds the column to
        assert session.scalar(select(func.count()).select_from(Result).where(Result.moods.is_(None))) == 1
    upgraded = run_scan(database, with_moods, tmp_path / "music")
    assert upgraded.counts == {Outcome.UNCHANGED: 1} and upgraded.mood_counts == {Outcome.TAGGED: 1}
    assert open_tags(path).read("mood") == [GENRE_MOODS["techno"]]
    assert run_scan(database, with_moods, tmp_path / "music").counts == {Outcome.SKIPPED: 1}


def test_changing_mood_options_re_decides_from_the_stored_scores(
    tmp_path: Path, database: Database, card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = one_track(tmp_path)
    open_tags(path).write({"mood": ["Chill"]})
    assert run_scan(database, card, tmp_path / "music").mood_counts == {Outcome.KEPT: 1}
    with monkeypatch.context() as patched:
        forbid_decoding(patched)
        overwrite = run_scan(database, card, tmp_path / "music", policy=Policy.OVERWRITE)
        assert overwrite.mood_counts == {Outcome.TAGGED: 1} and open_tags(path).read("mood") == ["Happy"]
        off = run_scan(database, card, tmp_path / "music", policy=Policy.OVERWRITE, moods=False)
        assert off.counts == {Outcome.UNCHANGED: 1} and not off.mood_counts  # re-decided, the mood left alone
        assert open_tags(path).read("mood") == ["Happy"]
        assert run_scan(database, card, tmp_path / "music", policy=Policy.OVERWRITE, moods=False).counts == {
            Outcome.SKIPPED: 1
        }
    # Moods on again: the latest result holds no mood scores, so only the audio can give them.
    on = run_scan(database, card, tmp_path / "music", policy=Policy.OVERWRITE)
    assert on.counts == {Outcome.UNCHANGED: 1} and on.mood_counts == {Outcome.UNCHANGED: 1}
    with database.session() as session:
        latest = session.scalars(select(Result).order_by(Result.id.desc())).first()
        assert latest is not None and latest.moods is not None and latest.moods["chosen"] == ["Happy"]
        assert session.scalar(select(Track.file_moods)) == ["Happy"]
        # Each field is known as ours from our last write of that role: neither is taken for the owner's.
        assert session.execute(select(Track.user_genres, Track.user_moods)).one() == ([], ["Chill"])


def learned_mood_vocabulary(
    database: Database, card: ModelCard, name: str, bias: list[float], learned_at: str = "2000-01-01T00:00:00.000000Z"
) -> None:
    """A learned mood vocabulary card (as `tagger learn` saves one) over the embedding: Calm / Lively by ``bias``."""
    import numpy as np

    from tagger.vocabulary import CARD_KIND, CARD_SCHEMA_VERSION, EmbeddingHead, vocabularies_dir
    from tests.test_linear_head import embedding_size

    size = embedding_size(card, vocabularies_dir(database.url).parent)
    linear = EmbeddingHead(np.zeros(size), np.ones(size), np.zeros((2, size)), np.asarray(bias))
    head = {
        "labels": ["Calm", "Lively"],
        "task": "multilabel",
        "role": "mood",
        "thresholds": {"Calm": 0.5, "Lively": 0.5},
    }
    folder = vocabularies_dir(database.url)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"kind": CARD_KIND, "schema_version": CARD_SCHEMA_VERSION,
        "model_id": card.model_id, "learned_at": learned_at, "head": head,
        "linear": linear.to_dict()}))  # fmt: skip


def test_a_learned_mood_vocabulary_is_written_and_the_card_s_head_takes_over_again(
    tmp_path: Path, card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = one_track(tmp_path)
    database = Database(tmp_path / "state" / "tagger.db")
    learned_mood_vocabulary(database, card, "feel", [2.0, -2.0])  # Calm 0.88, Lively 0.12 for every track
    first = run_scan(database, card, path.parent, mood_vocabulary="feel")
    assert first.mood_counts == {Outcome.TAGGED: 1} and open_tags(path).read("mood") == ["Calm"]
    with database.session() as session:
        moods = session.scalar(select(Result.moods))
        assert moods is not None and moods["vocabulary"] == "feel" and moods["chosen"] == ["Calm"]
        assert "valence" not in moods  # not the four quadrants: no axes
    assert run_scan(database, card, path.parent, mood_vocabulary="feel").counts == {Outcome.SKIPPED: 1}
    # Learned again (newer than the stored result): applied from the stored embedding, nothing decoded.
    learned_mood_vocabulary(database, card, "feel", [-2.0, 2.0], datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    with monkeypatch.context() as patched:
        forbid_decoding(patched)
        relearned = run_scan(database, card, path.parent, mood_vocabulary="feel")
    assert relearned.mood_counts == {Outcome.TAGGED: 1} and open_tags(path).read("mood") == ["Lively"]
    # Back to the card's mood head: the stored result holds no scores of it, so the track is classified again;
    # the MOOD is our own earlier write, so it is replaced even under keep.
    again = run_scan(database, card, path.parent)
    assert again.mood_counts == {Outcome.TAGGED: 1} and open_tags(path).read("mood") == ["Happy"]
    with pytest.raises(ValueError, match="no mood vocabulary 'nothing'"):
        Library(database, card, TagOptions(mood_vocabulary="nothing"))


def test_no_moods_and_moods_false_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGER_DB", str(tmp_path / "cli.db"))
    config = tmp_path / "config.toml"
    monkeypatch.setenv("TAGGER_CONFIG", str(config))
    card_path = mood_card_path(tmp_path / "card")
    path = one_track(tmp_path)
    runner = CliRunner()

    def scan(*args: str) -> dict:
        result = runner.invoke(app, ["scan", str(path.parent), "--model", str(card_path), "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    config.write_text("moods = false\n")
    assert scan()["mood_counts"] == {} and open_tags(path).read("mood") == []
    config.write_text("")
    assert scan("--no-moods")["mood_counts"] == {} and open_tags(path).read("mood") == []
    lines = runner.invoke(app, ["scan", str(path.parent), "--model", str(card_path)])
    assert lines.exit_code == 0 and f"tagged  {path}  mood: (none) -> Happy 0.9" in lines.output
    assert "mood tagged" in lines.output and open_tags(path).read("mood") == ["Happy"]
    for command in ("scan", "watch"):  # the daemon takes the flag into the same settings (see tests/daemon)
        shown = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert "--moods --no-moods" in " ".join(shown.output.replace("/", " ").split()), shown.output
    config.write_text('moods = "yes"\n')
    bad = runner.invoke(app, ["scan", str(path.parent), "--model", str(card_path)])
    assert bad.exit_code == 2 and "moods: expected true or false" in bad.output and "Traceback" not in bad.output
    config.write_text('mood_vocabulary = "nothing"\n')
    missing = runner.invoke(app, ["scan", str(path.parent), "--model", str(card_path)])
    assert missing.exit_code == 1 and "no mood vocabulary 'nothing'" in missing.output
    config.write_text("")
    restored = runner.invoke(app, ["restore"])
    assert restored.exit_code == 0 and f"restored {path}: (no genre); mood: (no mood)" in restored.output
    assert open_tags(path).read("mood") == [] and open_tags(path).read("genre") == []
