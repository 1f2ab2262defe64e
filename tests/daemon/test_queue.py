"""The queue: a file is read once its quiet period passes unchanged; bursts; overflow falls back to a reconcile."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from tagger.daemon.events import FileDeleted, FileMoved, FolderDeleted, Operation
from tagger.daemon.queue import ChangeQueue
from tagger.daemon.roots import root_of
from tagger.record import Library
from tagger.store import Result, TrackStatus
from tagger.tags import open_tags
from tests.daemon.harness import QUIET, make, running, tagged, track_rows, wait_for


def test_slow_copy_is_tagged_once_after_it_ends(library: Library, music: Path, staging: Path) -> None:
    source = make(staging / "slow.wav", seed=1)
    data = source.read_bytes()
    target = music / "slow.wav"
    with running(library, [music], quiet_seconds=1.0) as daemon:  # 1 s: a loaded CI box may stall a write 0.5 s
        chunks = 10
        with target.open("wb") as f:  # 10 chunks over 2.5 s: more than twice the quiet period
            for i in range(chunks):
                f.write(data[i * len(data) // chunks : (i + 1) * len(data) // chunks])
                f.flush()
                time.sleep(0.25)
        copy_ended = datetime.now(UTC).replace(tzinfo=None)
        assert str(target) not in track_rows(library.db), "read before the copy ended"
        assert wait_for(lambda: tagged(library.db, target))
        assert daemon.wait_idle(10, settle=2.0)
    assert track_rows(library.db)[str(target)] == (TrackStatus.DONE, 1)
    with library.db.session() as session:
        result = session.scalars(select(Result)).one()
        assert result.created_at >= copy_ended
    assert daemon.counts["failed"] == 0


def test_burst_of_200_files_is_all_tagged(library: Library, music: Path, staging: Path) -> None:
    sources = [make(staging / f"t{i:03d}{'.flac' if i % 2 else '.wav'}", i) for i in range(200)]
    with running(library, [music], isolate=True) as daemon:
        started = time.monotonic()
        for source in sources:  # a library copied in
            shutil.copy(source, music / source.name)
        copied = time.monotonic()
        assert wait_for(lambda: daemon.counts["tagged"] >= 200, timeout=120), daemon.status()
        took = time.monotonic() - started
        assert daemon.wait_idle(10, settle=2 * QUIET)
        print(f"\n200-file burst: copied in {copied - started:.2f} s, all tagged {took:.1f} s after the first copy")
    rows = track_rows(library.db)
    assert len(rows) == 200
    assert all(row == (TrackStatus.DONE, 1) for row in rows.values())
    assert all(open_tags(music / s.name).read_genres() for s in sources)
    assert daemon.errors == 0


def test_queue_overflow_falls_back_to_a_full_reconcile(library: Library, music: Path, staging: Path) -> None:
    sources = [make(staging / f"o{i}.wav", i) for i in range(12)]
    with running(library, [music], queue_limit=4) as daemon:
        for source in sources:
            shutil.copy(source, music / source.name)
        assert wait_for(lambda: sum(tagged(library.db, music / s.name) for s in sources) == 12, timeout=60)
        assert daemon.wait_idle(15, settle=2 * QUIET)
        assert daemon.queue_length == 0
    assert all(row == (TrackStatus.DONE, 1) for row in track_rows(library.db).values())


def test_a_file_is_ready_once_its_quiet_period_passes_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "music"
    root.mkdir()
    queue = ChangeQueue(quiet_seconds=1.0, limit=10, root_of=lambda path: root_of(path, [str(root)]))
    track = root / "a.wav"
    track.write_bytes(b"x" * 100)
    queue.touch(str(track))
    queue.touch(str(tmp_path / "outside.wav"))  # not under a root: ignored
    assert len(queue) == 1 and queue.wake.is_set()
    batch, next_due = queue.ready_batch(8)
    assert batch == [] and next_due is not None and next_due > time.monotonic()
    time.sleep(0.5)
    with track.open("ab") as still_written:  # without an event (as under polling)
        still_written.write(b"y")
    time.sleep(0.7)  # past the first due time: the changed size re-arms the quiet period
    assert queue.ready_batch(8)[0] == []
    time.sleep(1.1)
    assert queue.ready_batch(8)[0] == [(root, track)]
    assert len(queue) == 0


def test_operations_drop_the_files_waiting_under_them_and_both_tables_are_bounded(tmp_path: Path) -> None:
    root = tmp_path / "music"
    files = [root / "album" / "1.wav", root / "albums" / "2.wav", root / "3.wav"]
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"x")
    queue = ChangeQueue(quiet_seconds=60.0, limit=3, root_of=lambda path: root_of(path, [str(root)]))
    for file in files:
        queue.touch(str(file))
    operations: list[Operation] = [FolderDeleted(str(root / "album")), FileMoved(str(files[2]), None)]
    for operation in operations:
        queue.put(operation)
    assert queue.take_operations() == operations
    assert len(queue) == 1  # albums/2.wav waits on: a folder sharing the prefix is another folder
    assert not queue.take_overflowed()
    for name in ("4.wav", "5.wav", "6.wav"):
        (root / name).write_bytes(b"x")
        queue.touch(str(root / name))
    for _ in range(4):
        queue.put(FileDeleted(str(root / "gone.wav")))
    assert len(queue) == 3 + 3  # the limit in each table; the rest dropped...
    assert queue.take_overflowed()  # ...and a reconcile asked for, once
    assert not queue.take_overflowed()
