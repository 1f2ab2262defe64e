"""Recording several tracks at a time: order kept, bounded look-ahead, errors after the running jobs end; and a scan
with several recorders stores and writes exactly what a scan with one does."""

from __future__ import annotations

import shutil
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
from tagger.store import Database, TagWrite, TagWriteStatus, Track
from tagger.tags import open_tags
from tagger.track import Outcome


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
def test_a_scan_with_several_recorders_records_and_writes_what_one_does(
    format_library: Path, tmp_path: Path, db_url: str, tiny_card: ModelCard
) -> None:
    """Every track of every format tagged, the same genres in the files and in the database, one write each."""
    outcomes, files, rows = {}, {}, {}
    for recorders, url in ((1, f"sqlite:///{tmp_path / 'one.db'}"), (8, db_url)):
        root = tmp_path / f"music-{recorders}"
        shutil.copytree(format_library, root)
        database = Database(url)
        library = Library(database, tiny_card, TagOptions(tag_low_confidence=True))
        with Scanner(library, isolate=False, recorders=recorders) as scanner:
            outcomes[recorders] = [(r.path.name, r.outcome) for r in scanner.scan([root])]
        files[recorders] = {p.name: open_tags(p).read_genres() for p in root.iterdir()}
        with database.session() as session:
            rows[recorders] = {
                Path(track.path).name: (
                    track.status,
                    track.file_genres,
                    [(w.previous, w.new) for w in track.tag_writes],
                )
                for track in session.scalars(select(Track))
            }
            assert {w.status for w in session.scalars(select(TagWrite))} == {TagWriteStatus.APPLIED}
        database.dispose()
    assert outcomes[8] == outcomes[1]  # same order too: reports come in the walk's order
    assert {outcome for _, outcome in outcomes[8]} == {Outcome.TAGGED}
    assert files[8] == files[1] and rows[8] == rows[1]
    assert all(genres for genres in files[8].values())
