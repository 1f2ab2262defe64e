"""End to end: a folder of real tracks in every format, the tiny model, a real SQLite file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC
from sqlalchemy import func, select

from tagger import analysis
from tagger.errors import ModelError
from tagger.model import Classifier, ModelCard, load_card
from tagger.policy import Policy
from tagger.record import Library, TagOptions
from tagger.report import build_report
from tagger.restore import restore
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import Outcome
from tagger.walk import iter_audio_files
from tests.audio_factory import ALL_EXTENSIONS, make_track
from tests.conftest import TINY_CARD
from tests.sabotage import sabotaged_analyse


def window_shape(card: ModelCard) -> tuple[int, int]:
    return card.features.window_frames, card.features.n_mels


pytestmark = [pytest.mark.model, pytest.mark.runtime, pytest.mark.ffmpeg]


def run_scan(database: Database, card: ModelCard, root: Path, **options: object) -> ScanSummary:
    """In-process scan (no worker processes), to keep these tests quick; workers are tested below."""
    summary = ScanSummary()
    force = bool(options.pop("force", False))
    library = Library(database, card, TagOptions(**options))  # type: ignore[arg-type]
    with Scanner(library, isolate=False, force=force) as scanner:
        for report in scanner.scan([root]):
            summary.add(report)
    return summary


@pytest.fixture
def database(any_database: Database) -> Database:
    """Every scan test here runs on a SQLite file and on a real PostgreSQL server."""
    return any_database


def latest_top_genre(database: Database, path: Path) -> str:
    with database.session() as session:
        track = session.scalar(select(Track).where(Track.path == str(path)))
        assert track is not None
        result = max(track.results, key=lambda r: r.id)
        return str(result.genres[0]["genre"])


def test_scan_tags_every_format_and_a_second_run_skips_them(
    library_copy: Path, database: Database, tiny_card: ModelCard
) -> None:
    first = run_scan(database, tiny_card, library_copy)
    assert first.counts[Outcome.TAGGED] == len(ALL_EXTENSIONS), first.failures
    for path in sorted(library_copy.iterdir()):
        genre = path.name.split("-")[0]  # the synthetic genre the track was made of
        assert open_tags(path).read_genres() == [latest_top_genre(database, path)] == [genre]
    second = run_scan(database, tiny_card, library_copy)
    assert second.counts == {Outcome.SKIPPED: len(ALL_EXTENSIONS)}
    with database.session() as session:
        assert session.scalar(select(func.count(Result.id))) == len(ALL_EXTENSIONS)
        assert {t.status for t in session.scalars(select(Track))} == {TrackStatus.DONE}
        embedding = session.scalar(select(Result.embedding))
        dims = Classifier(tiny_card).predict(np.zeros((1, *window_shape(tiny_card)), np.float32)).embeddings.shape[1]
        assert embedding is not None and len(embedding) == 2 * dims  # float16 mean of the window embeddings

    report = build_report(database)
    assert report.tracks == report.classified == len(ALL_EXTENSIONS)
    assert sum(row.tracks for row in report.genres) == len(ALL_EXTENSIONS)
    assert sum(row.share for row in report.genres) == pytest.approx(1.0)


def test_force_is_per_run_and_reconfigure_tags_with_new_options(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    """The daemon's doors into one long-lived scanner: ``run(force=True)`` classifies an unchanged file again for
    that run only; ``reconfigure`` (a config reload) re-decides from the stored result with the new options."""
    music = tmp_path / "music"
    track = make_track(music / "a.wav", genre="drone", seconds=1.0, sample_rate=16000)
    files = [(music, track)]

    def results() -> int:
        with database.session() as session:
            return session.scalar(select(func.count(Result.id))) or 0

    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        assert [r.outcome for r in scanner.run(files)] == [Outcome.TAGGED]
        assert [r.outcome for r in scanner.run(files, force=True)] != [Outcome.SKIPPED]
        assert results() == 2  # classified again
        assert [r.outcome for r in scanner.run(files)] == [Outcome.SKIPPED]  # the force did not stick
        assert len(open_tags(track).read_genres()) == 1
        scanner.reconfigure(Library(database, tiny_card, TagOptions(top_k=2, min_confidence=0.0)), max_windows=1)
        assert [r.outcome for r in scanner.run(files)] == [Outcome.TAGGED]
        assert len(open_tags(track).read_genres()) == 2
        assert results() == 3  # re-decided from the stored windows, recorded once


def test_dry_run_writes_nothing_anywhere(library_copy: Path, database: Database, tiny_card: ModelCard) -> None:
    before = {p: p.read_bytes() for p in library_copy.iterdir()}
    summary = run_scan(database, tiny_card, library_copy, dry_run=True)
    assert summary.counts[Outcome.WOULD_TAG] == len(before)
    assert all(change.existing == [] and change.proposed for change in summary.changes)
    assert {p: p.read_bytes() for p in library_copy.iterdir()} == before
    with database.session() as session:
        assert session.scalar(select(func.count(Track.id))) == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy.KEEP, lambda model: ["Chanson"]),
        (Policy.OVERWRITE, lambda model: [model]),
        (Policy.MERGE, lambda model: ["Chanson", model]),
    ],
)
def test_policies_respect_the_owners_genre(
    tmp_path: Path, database: Database, tiny_card: ModelCard, policy: Policy, expected: object
) -> None:
    path = make_track(tmp_path / "music" / "song.flac", seconds=4.0)
    open_tags(path).write_genres(["Chanson"])
    summary = run_scan(database, tiny_card, tmp_path / "music", policy=policy)
    model_genre = latest_top_genre(database, path)
    assert open_tags(path).read_genres() == expected(model_genre)  # type: ignore[operator]
    assert summary.counts[Outcome.KEPT if policy is Policy.KEEP else Outcome.TAGGED] == 1
    with database.session() as session:
        track = session.scalar(select(Track))
        assert track is not None and track.user_genres == ["Chanson"]


def test_restore_puts_previous_values_back(library_copy: Path, database: Database, tiny_card: ModelCard) -> None:
    flac = next(library_copy.glob("*.flac"))
    open_tags(flac).write_genres(["Chanson"])
    run_scan(database, tiny_card, library_copy, policy=Policy.OVERWRITE)
    assert open_tags(flac).read_genres() != ["Chanson"]
    reports = restore(database)
    assert sum(r.restored for r in reports) == len(ALL_EXTENSIONS)
    assert open_tags(flac).read_genres() == ["Chanson"]
    for path in library_copy.iterdir():
        if path != flac:
            assert open_tags(path).read_genres() == []
    with database.session() as session:
        assert set(session.scalars(select(TagWrite.status))) == {TagWriteStatus.RESTORED}
    # restored files are not re-tagged by the next scan: they are recorded as they are now
    assert run_scan(database, tiny_card, library_copy).counts == {Outcome.SKIPPED: len(ALL_EXTENSIONS)}


def test_restore_leaves_a_genre_the_owner_changed_since(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    path = make_track(tmp_path / "music" / "a.mp3", seconds=3.0)
    run_scan(database, tiny_card, tmp_path / "music")
    open_tags(path).write_genres(["Mine"])
    (report,) = restore(database)
    assert not report.restored and "changed since" in report.reason
    assert open_tags(path).read_genres() == ["Mine"]


def test_a_bad_file_among_good_ones_is_recorded_and_the_scan_goes_on(
    library_copy: Path, database: Database, tiny_card: ModelCard
) -> None:
    bad = library_copy / "broken.flac"
    bad.write_bytes(b"not audio at all" * 100)
    empty = library_copy / "empty.mp3"
    empty.touch()
    summary = run_scan(database, tiny_card, library_copy)
    assert summary.counts[Outcome.TAGGED] == len(ALL_EXTENSIONS)
    assert {p.name for p, _ in summary.failures} == {"broken.flac", "empty.mp3"}
    assert all("not an audio file" in reason for _, reason in summary.failures)
    assert bad.read_bytes() == b"not audio at all" * 100 and empty.stat().st_size == 0
    report = build_report(database)
    assert report.failed == 2 and {Path(f["path"]).name for f in report.failures} == {"broken.flac", "empty.mp3"}
    # failures are not retried until the file changes
    assert run_scan(database, tiny_card, library_copy).counts[Outcome.SKIPPED] == len(ALL_EXTENSIONS) + 2


def test_report_counts_agree_with_its_lists(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    """Unreadable files and classified files whose tag write failed are counted apart, each with its list."""
    root = tmp_path / "music"
    make_track(root / "good.flac", seconds=3.0)
    (root / "broken.flac").write_bytes(b"not audio at all" * 100)
    make_track(root / "read-only.ogg", seconds=3.0).chmod(0o444)
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.TAGGED: 1, Outcome.FAILED: 2}, summary.failures
    report = build_report(database).to_dict()
    assert report["failed"] == len(report["failures"]) == 1 and "broken.flac" in report["failures"][0]["path"]
    assert report["tag_failed"] == len(report["tag_failures"]) == 1
    assert "read-only" in report["tag_failures"][0]["reason"]
    assert report["tracks"] == report["classified"] + report["failed"] == 3


def test_scan_marks_deleted_tracks_gone_under_its_roots_only(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        make_track(root / "kept.wav", seconds=2.0)
        make_track(root / "sub" / "deleted.wav", seconds=2.0, seed=1)
        run_scan(database, tiny_card, root)
    (first / "sub" / "deleted.wav").unlink()
    (second / "sub" / "deleted.wav").unlink()
    summary = run_scan(database, tiny_card, first)
    assert summary.counts == {Outcome.SKIPPED: 1, Outcome.GONE: 1}
    with database.session() as session:
        statuses = {t.path: t.status for t in session.scalars(select(Track))}
    assert statuses[str(first / "sub" / "deleted.wav")] == TrackStatus.GONE
    assert statuses[str(second / "sub" / "deleted.wav")] == TrackStatus.DONE  # not scanned: left alone
    report = build_report(database)
    assert (report.tracks, report.gone) == (3, 1)
    assert run_scan(database, tiny_card, first).counts == {Outcome.SKIPPED: 1}  # gone once, not every run

    # A root with recorded tracks that is now empty (an unmounted disk) is reported, its tracks kept.
    shutil.rmtree(second)
    second.mkdir()
    summary = run_scan(database, tiny_card, second)
    assert summary.counts == {Outcome.FAILED: 1}
    ((path, reason),) = summary.failures
    assert path == second and "not mounted" in reason and "2 recorded tracks" in reason
    second.rmdir()  # the mount point itself missing: the same
    assert run_scan(database, tiny_card, second).counts == {Outcome.FAILED: 1}
    assert build_report(database).gone == 1


def test_interrupted_scan_resumes_where_it_stopped(
    library_copy: Path, database: Database, tiny_card: ModelCard
) -> None:
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        reports = scanner.scan([library_copy])
        first_three = [next(reports) for _ in range(3)]  # Ctrl-C after three tracks
    assert all(r.outcome is Outcome.TAGGED for r in first_three)
    resumed = run_scan(database, tiny_card, library_copy)
    assert resumed.counts == {Outcome.SKIPPED: 3, Outcome.TAGGED: len(ALL_EXTENSIONS) - 3}


@pytest.mark.parametrize("lookup", ["per file", "whole scan"])
def test_moved_track_is_followed_not_reclassified(
    tmp_path: Path, database: Database, tiny_card: ModelCard, lookup: str
) -> None:
    """A daemon's batch (a list of files) looks each new file's content up; a whole scan asks once which contents
    can have moved (the tracks it did not walk)."""
    root = tmp_path / "music"
    path = make_track(root / "a" / "song.flac", seconds=3.0)
    other = make_track(root / "a" / "other.flac", seconds=3.0, seed=1)
    run_scan(database, tiny_card, root)
    (root / "b").mkdir()
    moved = path.rename(root / "b" / "song.flac")
    make_track(root / "b" / "new.flac", seconds=3.0, seed=2)
    summary = ScanSummary()
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        reports = scanner.scan([root]) if lookup == "whole scan" else scanner.run(list(iter_audio_files([root])))
        for report in reports:
            summary.add(report)
    assert summary.counts == {Outcome.MOVED: 1, Outcome.SKIPPED: 1, Outcome.TAGGED: 1}
    with database.session() as session:
        assert session.scalar(select(func.count(Result.id))) == 3
        assert set(session.scalars(select(Track.path))) == {str(moved), str(other), str(root / "b" / "new.flac")}


def test_a_file_at_a_new_path_with_a_recorded_files_content_is_no_move_while_that_file_is_there(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    """A copy is a new track, on a whole scan too (its content's track is walked: no source of a move)."""
    root = tmp_path / "music"
    path = make_track(root / "a" / "song.flac", seconds=3.0)
    run_scan(database, tiny_card, root)
    shutil.copy2(path, root / "copy.flac")  # tagged already: its genre is the one the model proposes
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.SKIPPED: 1, Outcome.UNCHANGED: 1}
    with database.session() as session:
        assert set(session.scalars(select(Track.path))) == {str(path), str(root / "copy.flac")}


def test_workers_give_the_same_results_as_in_process(library_copy: Path, tmp_path: Path, tiny_card: ModelCard) -> None:
    parallel_db = Database(tmp_path / "parallel.db")
    serial_copy = tmp_path / "serial"
    shutil.copytree(library_copy, serial_copy)
    with Scanner(Library(parallel_db, tiny_card), workers=2) as scanner:
        parallel = {r.path.name: r.proposed for r in scanner.scan([library_copy])}
    serial_db = Database(tmp_path / "serial.db")
    with Scanner(Library(serial_db, tiny_card), isolate=False) as scanner:
        serial = {r.path.name: r.proposed for r in scanner.scan([serial_copy])}
    assert parallel == serial and len(parallel) == len(ALL_EXTENSIONS)


def test_a_crashing_or_hanging_decoder_costs_one_track(
    tmp_path: Path, tiny_card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes: a track that kills or hangs its worker is recorded as failed; the rest are tagged.
    (On SQLite only: the worker pool's handling does not depend on the engine, and each run waits out a timeout.)"""
    database = Database(tmp_path / "state" / "tagger.db")
    root = tmp_path / "music"
    for i in range(4):
        make_track(root / f"good{i}.wav", seconds=2.0, seed=i)
    make_track(root / "crash.wav", seconds=2.0)
    make_track(root / "hang.wav", seconds=2.0)
    library = Library(database, tiny_card)
    monkeypatch.setattr(analysis, "_analyse_in_worker", sabotaged_analyse)  # pickled by name for the workers
    with Scanner(library, workers=2, timeout=10) as scanner:
        reports = {r.path.name: r for r in scanner.scan([root])}
    assert {n for n, r in reports.items() if r.outcome is Outcome.TAGGED} == {f"good{i}.wav" for i in range(4)}, [
        (n, r.reason) for n, r in reports.items()
    ]
    assert "crashed" in reports["crash.wav"].reason
    assert "gave up after 10 s" in reports["hang.wav"].reason


def test_id3v23_joined_genres_verify_and_are_not_rewritten(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    from mutagen.id3 import ID3, TIT2

    path = make_track(tmp_path / "music" / "old.mp3", seconds=3.0)
    tag = ID3()
    tag.add(TIT2(encoding=3, text=["An old v2.3 tag"]))
    tag.save(path, v2_version=3)
    first = run_scan(database, tiny_card, tmp_path / "music", top_k=2, verify=True)
    assert first.counts == {Outcome.TAGGED: 1}, first.failures
    (value,) = open_tags(path).read_genres()
    assert value.count("; ") == 1  # two genres joined, as ID3v2.3 stores them
    again = run_scan(database, tiny_card, tmp_path / "music", top_k=2, verify=True, force=True)
    assert again.counts == {Outcome.UNCHANGED: 1}


def test_new_tagging_options_are_applied_from_stored_results_without_decoding(
    library_copy: Path, database: Database, tiny_card: ModelCard, tmp_path: Path
) -> None:
    files = sorted(library_copy.iterdir())
    assert run_scan(database, tiny_card, library_copy, top_k=1).counts == {Outcome.TAGGED: len(files)}
    # The same model (same id) with a model file that cannot load: any decoding would stop the scan.
    (tmp_path / "broken").mkdir()
    shutil.copy(TINY_CARD, tmp_path / "broken" / "tiny.json")
    (tmp_path / "broken" / "tiny.tflite").write_bytes(b"not a model")
    broken = load_card(tmp_path / "broken" / "tiny.json")
    assert broken.model_id == tiny_card.model_id
    with pytest.raises(ModelError):
        Classifier(broken)

    assert run_scan(database, broken, library_copy, top_k=2).counts == {Outcome.TAGGED: len(files)}
    for path in files:
        genres = open_tags(path).read_genres()
        assert len(genres) == 2 and genres[0] == path.name.split("-")[0], (path, genres)
    assert run_scan(database, broken, library_copy, top_k=2).counts == {Outcome.SKIPPED: len(files)}
    low = run_scan(database, broken, library_copy, top_k=2, min_confidence=1.0)
    assert low.counts == {Outcome.LOW_CONFIDENCE: len(files)}

    with database.session() as session:  # results from before options were recorded: re-decided once
        for result in session.scalars(select(Result)):
            result.decided_with = None
    again = run_scan(database, broken, library_copy, top_k=2, min_confidence=1.0)
    assert again.counts == {Outcome.LOW_CONFIDENCE: len(files)}
    assert run_scan(database, broken, library_copy, top_k=2, min_confidence=1.0).counts == {Outcome.SKIPPED: len(files)}


def test_a_file_of_2_gib_or_more_does_not_stop_the_scan(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    """Its size is recorded exactly (was: a 32-bit column; PostgreSQL aborted the whole scan)."""
    root = tmp_path / "music"
    make_track(root / "song.flac", seconds=3.0)
    huge = root / "huge.wav"
    with open(huge, "wb") as sparse:  # 2.5 GiB of holes: no disk used
        sparse.truncate(5 * 2**29)
    summary = run_scan(database, tiny_card, root)
    assert summary.counts == {Outcome.TAGGED: 1, Outcome.FAILED: 1}
    with database.session() as session:
        assert session.scalar(select(Track.size).where(Track.path == str(huge))) == 5 * 2**29
    assert run_scan(database, tiny_card, root).counts == {Outcome.SKIPPED: 2}


def _old_default_card(tmp_path: Path, change: str) -> tuple[ModelCard, ModelCard]:
    """(old, new) cards over the tiny model: the old default differs in model version or in head,
    and writes its genres with an ``Old`` prefix, so a track re-classified by the new one shows it."""
    folder = tmp_path / f"cards-{change}"
    folder.mkdir()
    shutil.copy(TINY_CARD.with_suffix(".tflite"), folder / "tiny.tflite")
    raw = json.loads(TINY_CARD.read_text())
    head = raw["heads"]["synthetic"]
    old_head = head | {"tag_names": {label: "Old" + label for label in head["labels"]}}
    old, new = json.loads(json.dumps(raw)), raw
    old.pop("float_model_file", None)
    new.pop("float_model_file", None)
    if change == "model":
        old["version"] = "0"
        old["heads"]["synthetic"] = old_head
    else:
        old["heads"]["previous"] = old_head
        old["default_head"] = "previous"
    (folder / "old.json").write_text(json.dumps(old | {"model_file": "tiny.tflite"}))
    (folder / "new.json").write_text(json.dumps(new | {"model_file": "tiny.tflite"}))
    return load_card(folder / "old.json"), load_card(folder / "new.json")


@pytest.mark.parametrize("change", ["model", "head"])
def test_genres_the_old_default_wrote_are_replaced_by_the_new_default_on_the_next_scan(
    format_library: Path, database: Database, tmp_path: Path, change: str
) -> None:
    root = tmp_path / "music"
    root.mkdir()
    names = sorted(p.name for p in format_library.iterdir() if p.suffix in (".flac", ".mp3", ".ogg"))
    for name in names:
        shutil.copy(format_library / name, root / name)
    owners = root / names[0]
    open_tags(owners).write_genres(["Chanson"])  # the owner's genre: policy keep protects it
    old, new = _old_default_card(tmp_path, change)
    assert (old.model_id != new.model_id) == (change == "model")

    first = run_scan(database, old, root)
    assert first.counts == {Outcome.TAGGED: len(names) - 1, Outcome.KEPT: 1}, first.failures
    assert all(open_tags(root / n).read_genres()[0].startswith("Old") for n in names[1:])

    second = run_scan(database, new, root)  # unchanged files: without the rule all would be skipped
    assert second.counts == {Outcome.TAGGED: len(names) - 1, Outcome.SKIPPED: 1}, second.failures
    for name in names[1:]:
        assert open_tags(root / name).read_genres() == [name.split("-")[0]]
    assert open_tags(owners).read_genres() == ["Chanson"]
    assert run_scan(database, new, root).counts == {Outcome.SKIPPED: len(names)}


def _album_folder(root: Path, genres: list[str], **tags: str) -> list[Path]:
    paths = []
    for number, genre in enumerate(genres, start=1):
        path = make_track(root / f"{genre}-{number}.flac", genre=genre, seconds=6.0, seed=number)
        flac = FLAC(path)
        for key, value in tags.items():
            flac[key] = value
        flac.save()
        paths.append(path)
    return paths


def test_album_consensus_gives_an_albums_tracks_its_genre_and_reports_the_far_one(
    tmp_path: Path, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    album = _album_folder(root / "album", ["techno", "techno", "drone"], album="Night", albumartist="DJ")
    inbox = [  # a flat folder of unrelated files: never one album
        *_album_folder(root / "inbox", ["techno"], artist="DJ"),
        *_album_folder(root / "inbox", ["chimes"], artist="Bells"),
    ]
    database = Database(f"sqlite:///{tmp_path / 'album.db'}")
    library = Library(database, tiny_card, TagOptions())
    with Scanner(library, isolate=False, album_mode="consensus") as scanner:
        reports = {report.path: report for report in scanner.scan([root])}
    assert {r.outcome for r in reports.values()} == {Outcome.TAGGED}
    assert [open_tags(p).read_genres() for p in album] == [["techno"]] * 3  # alone, the last one is drone
    assert [bool(reports[p].album_note) for p in album] == [False, False, True]
    assert "alone drone" in reports[album[2]].album_note
    assert [open_tags(p).read_genres() for p in inbox] == [["techno"], ["chimes"]]
    with database.session() as session:  # one write per file
        assert session.scalar(select(func.count(TagWrite.id))) == 5

    alone = tmp_path / "alone"
    shutil.copytree(root, alone)
    for path in alone.rglob("*.flac"):
        open_tags(path).write_genres([])
    track_db = Database(f"sqlite:///{tmp_path / 'track.db'}")
    with Scanner(Library(track_db, tiny_card, TagOptions()), isolate=False, album_mode="track") as scanner:
        assert {r.outcome for r in scanner.scan([alone])} == {Outcome.TAGGED}
    assert open_tags(alone / "album" / album[2].name).read_genres() == ["drone"]
