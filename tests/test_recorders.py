"""Recording several tracks at a time: order kept, bounded look-ahead, errors after the running jobs end; and a scan
with several recorders stores and writes exactly what a scan with one does."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.recorders import recorded_in_order
from tagger.scan import Scanner
from tagger.store import Database, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track


def test_results_come_in_the_jobs_order_with_several_running_at_once() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def job(value: int) -> Callable[[], int]:
        def run() -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05 if value % 3 else 0.15)  # later jobs finish first
            with lock:
                running -= 1
            return value

        return run

    assert list(recorded_in_order((job(i) for i in range(24)), recorders=4)) == list(range(24))
    assert most == 4


def test_jobs_are_taken_only_as_recorders_free_up() -> None:
    """The analyses feeding the jobs are held back: at most twice the recorders are pending at once."""
    taken = 0
    release = threading.Event()

    def jobs() -> Iterator[Callable[[], int]]:
        nonlocal taken
        for i in range(100):
            taken += 1
            yield lambda i=i: release.wait(30) and i

    results = recorded_in_order(jobs(), recorders=3)
    threading.Timer(1.0, release.set).start()
    assert next(results) == 0
    assert taken <= 2 * 3 + 1  # pending jobs plus the one taken when the first came back
    assert list(results) == list(range(1, 100))


def test_an_error_comes_out_after_the_running_jobs_finished_and_the_rest_are_dropped() -> None:
    finished: list[int] = []

    def job(value: int) -> Callable[[], int]:
        def run() -> int:
            if value == 2:
                raise RuntimeError("database gone")
            time.sleep(0.3)
            finished.append(value)
            return value

        return run

    with pytest.raises(RuntimeError, match="database gone"):
        list(recorded_in_order((job(i) for i in range(50)), recorders=4))
    started_before_the_error = set(finished)
    assert {0, 1, 3} <= started_before_the_error  # running with the failed one: finished, not abandoned
    assert len(finished) < 20  # the jobs queued behind were not started
    time.sleep(0.5)
    assert set(finished) == started_before_the_error  # nothing goes on running after the error came out


@pytest.mark.model
@pytest.mark.ffmpeg
@pytest.mark.parametrize(
    ("recorders", "processes"), [(8, 0), (2, 3)], ids=["8 threads", "3 recording processes x 2 threads"]
)
def test_a_scan_with_several_recorders_records_and_writes_what_one_does(
    format_library: Path, tmp_path: Path, db_url: str, tiny_card: ModelCard, recorders: int, processes: int
) -> None:
    """Every track of every format tagged, the same genres in the files and in the database, one write each."""
    outcomes, files, rows = {}, {}, {}
    for run, (recorders_, processes_, url) in enumerate(
        ((1, 0, f"sqlite:///{tmp_path / 'one.db'}"), (recorders, processes, db_url))
    ):
        root = tmp_path / f"music-{run}"
        shutil.copytree(format_library, root)
        database = Database(url)
        library = Library(database, tiny_card, TagOptions(tag_low_confidence=True))
        with Scanner(library, isolate=False, recorders=recorders_, recording_processes=processes_) as scanner:
            outcomes[run] = [(r.path.name, r.outcome) for r in scanner.scan([root])]
        files[run] = {p.name: open_tags(p).read_genres() for p in root.iterdir()}
        with database.session() as session:
            rows[run] = {
                Path(track.path).name: (
                    track.status,
                    track.file_genres,
                    [(w.previous, w.new) for w in track.tag_writes],
                )
                for track in session.scalars(select(Track))
            }
            assert {w.status for w in session.scalars(select(TagWrite))} == {TagWriteStatus.APPLIED}
        database.dispose()
    assert outcomes[1] == outcomes[0]  # same order too: reports come in the walk's order
    assert {outcome for _, outcome in outcomes[1]} == {Outcome.TAGGED}
    assert files[1] == files[0] and rows[1] == rows[0]
    assert all(genres for genres in files[1].values())


def _assert_nothing_half_done(database: Database, root: Path, names: set[str]) -> None:
    """No tag write left pending, and no temp copy left beside the files."""
    assert {p.name for p in root.iterdir()} == names
    with database.session() as session:
        assert all(w.status != TagWriteStatus.PENDING for w in session.scalars(select(TagWrite)))


@pytest.mark.model
@pytest.mark.ffmpeg
def test_a_recording_process_killed_mid_scan_costs_no_track(
    format_library: Path, tmp_path: Path, db_url: str, tiny_card: ModelCard
) -> None:
    """Real recording processes SIGKILLed at three points of a scan: what they held is recovered and recorded again,
    every file ends with the genre a scan in one process writes, written once, the owner's value kept for restore."""
    reference, root = tmp_path / "reference", tmp_path / "music"
    for copy in range(3):
        for folder in (reference, root):
            shutil.copytree(format_library, folder / f"copy-{copy}")
    options = TagOptions(tag_low_confidence=True)
    with Scanner(Library(Database(tmp_path / "one.db"), tiny_card, options), isolate=False) as scanner:
        expected = {r.path.relative_to(reference): r.outcome for r in scanner.scan([reference])}
    assert set(expected.values()) == {Outcome.TAGGED}
    before = {p.relative_to(root): open_tags(p).read_genres() for p in root.rglob("*.*")}

    database = Database(db_url)
    library = Library(database, tiny_card, options)
    pids: set[int] = set()
    killed: list[int] = []
    reports = []
    with Scanner(library, isolate=False, recorders=2, recording_processes=2) as scanner:
        for count, report in enumerate(scanner.scan([root])):
            reports.append(report)
            assert scanner._recording is not None
            pids |= scanner.recording_pids()
            # Records in flight on both processes, some half-way through; not one redoing a dead one's jobs alone
            # (killed twice, a job is given up: the next test), nor one killed already (its death not seen yet).
            running = [c.process.pid for c in scanner._recording._children if not c.alone]
            if count in (1, 5, 9) and (targets := sorted(set(running) - set(killed))):
                killed.append(targets[0])
                os.kill(killed[-1], signal.SIGKILL)
    assert len(killed) >= 2 and len(pids) == 2 + len(killed)  # each replaced
    outcomes = {r.path.relative_to(root): r.outcome for r in reports}
    assert outcomes.keys() == expected.keys() and len(reports) == len(expected)
    # TAGGED; where the killed process had written the file, its write was found applied: UNCHANGED (redone from the
    # same state), or SKIPPED (the recovery refreshed the size and mtime its write changed: done by another process).
    failed = [(r.path.name, r.reason) for r in reports if r.outcome is Outcome.FAILED]
    assert set(outcomes.values()) <= {Outcome.TAGGED, Outcome.UNCHANGED, Outcome.SKIPPED}, failed
    assert all(
        r.reason == "handled meanwhile by another tagger process" for r in reports if r.outcome is Outcome.SKIPPED
    )
    for path in expected:
        assert open_tags(root / path).read_genres() == open_tags(reference / path).read_genres()
    with database.session() as session:
        for track in session.scalars(select(Track)):
            path = Path(track.path).relative_to(root)
            assert track.status == TrackStatus.DONE
            writes = [(w.role, w.status, w.previous) for w in track.tag_writes]
            assert [w for w in writes if w[0] == "genre"] == [("genre", TagWriteStatus.APPLIED, before[path])]
    for folder in root.iterdir():
        _assert_nothing_half_done(database, folder, {p.name for p in format_library.iterdir()})


@pytest.mark.model
@pytest.mark.ffmpeg
def test_a_track_whose_recording_process_dies_twice_is_recorded_failed(
    format_library: Path, tmp_path: Path, tiny_card: ModelCard
) -> None:
    """The jobs of a dead process are sent again one at a time: the one whose process dies again is the culprit,
    recorded failed with why; the others are tagged."""
    root = tmp_path / "music"
    shutil.copytree(format_library, root)
    culprit = make_track(root / "zz-long.wav", genre="organ", seconds=120.0, seed=7)  # a slow write: killed in it
    database = Database(tmp_path / "state" / "tagger.db")
    library = Library(database, tiny_card, TagOptions(tag_low_confidence=True))
    kills: list[int] = []
    scanning = True

    def kill_whoever_records_the_culprit() -> None:
        while scanning and len(kills) < 2:
            recording = scanner._recording
            try:
                holders = [c for c in recording._children if culprit in (j.path for j in c.jobs.values())]
            except (AttributeError, RuntimeError):  # not started yet; a dict changed as it was read
                holders = []
            for child in holders:
                if child.process.pid not in kills:
                    os.kill(child.process.pid, signal.SIGKILL)
                    kills.append(child.process.pid)
            time.sleep(0.001)

    with Scanner(library, isolate=False, recorders=2, recording_processes=2) as scanner:
        killer = threading.Thread(target=kill_whoever_records_the_culprit)
        killer.start()
        try:
            reports = {r.path.name: r for r in scanner.scan([root])}
        finally:
            scanning = False
            killer.join()
    assert len(kills) == 2
    assert reports[culprit.name].outcome is Outcome.FAILED
    assert reports[culprit.name].reason == "a recording process died twice recording it (killed by signal 9)"
    others = {name: r.outcome for name, r in reports.items() if name != culprit.name}
    assert set(others.values()) == {Outcome.TAGGED}
    with database.session() as session:
        track = session.scalar(select(Track).where(Track.path == str(culprit)))
        assert track is not None and track.status == TrackStatus.FAILED
    _assert_nothing_half_done(database, root, {p.name for p in format_library.iterdir()} | {culprit.name})
