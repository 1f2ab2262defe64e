"""Other processes at work on the same files: a download stalled on its open descriptor, and the
names our own crashed writes leave (or that merely look like them). The writers are real second
processes; leftovers are made by the very call the tag writer uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tagger import audio
from tagger.errors import TagWriteError
from tagger.model import ModelCard
from tagger.record import Library
from tagger.scan import Scanner
from tagger.store import Database, Result, TagWrite, TagWriteStatus, TrackStatus
from tagger.tags import open_tags
from tagger.tags.leases import BEING_WRITTEN, NoWriters, open_for_writing
from tagger.tags.safe_write import temp_prefix
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.daemon.harness import running, wait_for

pytestmark = [pytest.mark.model]

# Writes the first half of argv[2]'s bytes to argv[1], says so, waits for a line on stdin, writes the rest.
STALLED_WRITER = """
import sys
data = open(sys.argv[2], "rb").read()
with open(sys.argv[1], "wb") as out:
    out.write(data[: len(data) // 2]); out.flush()
    print("half", flush=True)
    sys.stdin.readline()
    out.write(data[len(data) // 2 :])
"""


def start_writer(target: Path, source: Path) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", STALLED_WRITER, str(target), str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "half\n"
    return writer


def finish(writer: subprocess.Popen[str]) -> None:
    assert writer.stdin is not None
    writer.stdin.write("go\n")
    writer.stdin.close()
    assert writer.wait(30) == 0


def scan_json(root: Path, db: Path) -> dict:
    env = {**os.environ, "TAGGER_CONFIG": str(db.parent / "none.toml")}
    command = [sys.executable, "-m", "tagger.cli", "scan", str(root), "--db", str(db), "--model", str(TINY_CARD),
               "--json", "--workers", "1"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


# ---------------------------------------------------------------------------- a stalled writer
@pytest.mark.timeout(300)
def test_stalled_download_is_never_replaced_and_is_tagged_whole_next_run(tmp_path: Path) -> None:
    """Half an MP3 decodes and its tags read: before, the scan replaced it and the writer finished into
    the unlinked inode (the library kept half the song). Now the write waits for the writer to close."""
    source = make_track(tmp_path / "staging" / "song.mp3", seconds=8.0)
    root = tmp_path / "music"
    root.mkdir()
    target = root / "song.mp3"
    db = tmp_path / "state" / "t.db"
    writer = start_writer(target, source)
    try:
        inode = os.stat(target).st_ino
        first = scan_json(root, db)
        assert first["failures"] == [{"path": str(target), "reason": BEING_WRITTEN}]
        assert os.stat(target).st_ino == inode  # not replaced: the writer's descriptor is still this file
        with Database(db).session() as session:
            assert session.scalars(select(Result)).all() == []  # half a song was not even classified
    finally:
        finish(writer)
    assert target.read_bytes() == source.read_bytes()  # both halves landed in the file the library has
    second = scan_json(root, db)
    assert second["counts"] == {"tagged": 1}, second
    assert open_tags(target).read_genres()
    np.testing.assert_array_equal(audio.decode(target, 16000), audio.decode(source, 16000))


@pytest.mark.timeout(60)
def test_a_writer_that_opens_after_the_tags_were_read_stops_the_write(tmp_path: Path) -> None:
    """The race the scan's early look cannot close: the download starts between reading and writing."""
    source = make_track(tmp_path / "staging" / "song.mp3", seconds=4.0)
    target = tmp_path / "song.mp3"
    shutil.copy(source, target)
    tags = open_tags(target)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'r+b'); print(1, flush=True); input()", target],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "1\n"
        inode = os.stat(target).st_ino
        with pytest.raises(TagWriteError, match=BEING_WRITTEN):
            tags.write_genres(["Jazz"])
        assert os.stat(target).st_ino == inode and target.read_bytes() == source.read_bytes()
        assert not [name for name in os.listdir(tmp_path) if ".tagger-tmp-" in name]  # its temp copy is gone
    finally:
        writer.communicate("\n", timeout=10)
    tags.write_genres(["Jazz"])  # closed: now it may
    assert open_tags(target).read_genres() == ["Jazz"]


@pytest.mark.timeout(60)
def test_a_writer_opening_while_the_lease_is_held_is_seen_and_does_not_kill_us(tmp_path: Path) -> None:
    """An open for writing that starts inside the lease window waits for us and shows as a lease break;
    the break's signal is not SIGIO (whose default action would kill the tagger)."""
    path = make_track(tmp_path / "a.flac", seconds=1.0)
    opener = [sys.executable, "-c", "import sys; open(sys.argv[1], 'ab'); print('opened', flush=True)", str(path)]
    with NoWriters(path, path) as guard:
        guard.check()  # nobody writing yet
        late = subprocess.Popen(opener, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                guard.check()
            except Exception as error:
                assert BEING_WRITTEN in str(error)
                break
            time.sleep(0.05)
        else:
            pytest.fail("the lease break was never seen")
    assert late.stdout is not None and late.stdout.readline() == "opened\n"  # released: the opener went on
    assert late.wait(10) == 0


def test_proc_search_finds_a_real_writer_and_not_a_reader(tmp_path: Path) -> None:
    """The fallback where no lease is granted: another process's descriptors, read from /proc."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 10)
    for mode, writing in (("rb", False), ("ab", True), ("r+b", True)):
        holder = subprocess.Popen(
            [sys.executable, "-c", f"import sys; f = open(sys.argv[1], {mode!r}); print(1, flush=True); input()", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "1\n"
            found, complete = open_for_writing(os.stat(path))
            assert found is writing, mode
            if os.geteuid() == 0:
                assert complete  # root sees every process
        finally:
            holder.communicate("\n", timeout=10)
    assert open_for_writing(os.stat(path))[0] is False


# ---------------------------------------------------------------------------- leftovers
def test_only_real_leftovers_of_a_crashed_write_are_removed(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    crashed = make_track(root / "a.flac", seconds=2.0)
    make_track(root / "x.flac", seconds=2.0, seed=1)
    mine = make_track(root / "my.tagger-tmp-final.flac", seconds=2.0, seed=2)  # the owner's file, named so
    lookalikes = [root / ".x.flac.tagger-tmp-abc", root / ".x.flac.tagger-tmp-abcdefgh"]  # x has no pending write
    for path in lookalikes:
        path.write_bytes(b"the owner's bytes")
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        assert {r.path.name: r.outcome for r in scanner.scan([root])}[mine.name] is Outcome.TAGGED
    # A crash after the pending record, inside the write: the record is pending, the temp copy stays.
    with database.session() as session:
        write = session.scalars(select(TagWrite).join(TagWrite.track)).all()
        pending = next(w for w in write if w.track.path == str(crashed))
        pending.status, pending.track.status = TagWriteStatus.PENDING, TrackStatus.PENDING
    fd, leftover = tempfile.mkstemp(prefix=temp_prefix(crashed.name), dir=root)  # the writer's own call
    os.close(fd)

    library = Library(database, tiny_card)
    assert library.recover() == 1
    with Scanner(library, isolate=False) as scanner:
        list(scanner.scan([root]))

    assert not os.path.exists(leftover)
    assert mine.exists() and open_tags(mine).read_genres()
    for path in lookalikes:
        assert path.read_bytes() == b"the owner's bytes"


@pytest.mark.timeout(120)
def test_watch_waits_for_a_download_stalled_past_the_quiet_period(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    source = make_track(tmp_path / "staging" / "song.mp3", seconds=8.0)
    root = tmp_path / "music"
    root.mkdir()
    target = root / "song.mp3"
    library = Library(database, tiny_card)
    with running(library, [root]) as daemon:  # quiet period 0.5 s; the writer stalls far longer
        writer = start_writer(target, source)
        try:
            inode = os.stat(target).st_ino
            assert wait_for(lambda: daemon.counts["failed"] >= 1, timeout=30)
            assert daemon.last_track and BEING_WRITTEN in daemon.last_track["reason"]
            assert os.stat(target).st_ino == inode
        finally:
            finish(writer)
        assert wait_for(lambda: daemon.counts["tagged"] == 1, timeout=60)
    assert target.stat().st_size > source.stat().st_size // 2
    np.testing.assert_array_equal(audio.decode(target, 16000), audio.decode(source, 16000))
