"""The watch daemon against a real observer, real folders, a real database and the tiny model.

The quiet period is 0.5 s so every test runs in seconds; files are 1 s WAV/FLAC at the model's rate.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tagger.cli import app
from tagger.config import Settings, WatchSettings
from tagger.daemon import Daemon
from tagger.daemon.status import read_status, status_file_for
from tagger.library import Library, TagOptions
from tagger.model import ModelCard
from tagger.policy import Policy
from tagger.store import Database, Result, Track, TrackStatus
from tagger.systemd import Notifier
from tagger.tags import open_tags
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.test_systemd import datagram_socket

QUIET = 0.5
GENRES = ["drone", "techno", "chimes", "breaks", "organ"]
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- helpers
def wait_for(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def track_rows(db: Database) -> dict[str, tuple[str, int]]:
    """path -> (status, number of classifications)."""
    with db.session() as session:
        rows = session.execute(
            select(Track.path, Track.status, func.count(Result.id)).outerjoin(Result).group_by(Track.id)
        )
        return {path: (status, count) for path, status, count in rows}


def result_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Result.id))) or 0


def tagged(db: Database, path: Path) -> bool:
    row = track_rows(db).get(str(path))
    return row is not None and row[0] == TrackStatus.DONE and row[1] >= 1 and bool(open_tags(path).read_genres())


def make(path: Path, seed: int = 0) -> Path:
    return make_track(path, genre=GENRES[seed % len(GENRES)], seconds=1.0, sample_rate=16000, seed=seed)


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    return root


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    """Outside the watched root: files are made here, then copied or moved in."""
    folder = tmp_path / "staging"
    folder.mkdir()
    return folder


@pytest.fixture
def library(database: Database, tiny_card: ModelCard) -> Library:
    return Library(database, tiny_card, TagOptions())


@contextmanager
def running(
    library: Library,
    roots: list[Path],
    isolate: bool = False,
    reload: Callable[[], Settings] | None = None,
    **watch: object,
) -> Iterator[Daemon]:
    """A daemon in a thread. ``isolate=False`` (classify in-process) saves each test the worker start-up
    (~4 s); the burst and SIGTERM tests keep the real worker pool."""
    settings = WatchSettings(**{"quiet_seconds": QUIET, "reconcile_hours": 0.0, **watch})  # type: ignore[arg-type]
    daemon = Daemon(library, roots, settings, isolate=isolate, reload=reload, notifier=Notifier({}))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert wait_for(daemon.caught_up.is_set), "catch-up did not finish"
        yield daemon
    finally:
        daemon.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "daemon did not stop"


# ---------------------------------------------------------------------------- debounce
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


def test_partial_and_hidden_files_are_ignored_until_renamed(library: Library, music: Path, staging: Path) -> None:
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "a.wav", 2), music / "download.flac.part")
        shutil.copy(make(staging / "b.wav", 3), music / ".hidden.wav")
        time.sleep(4 * QUIET)
        assert daemon.wait_idle(10, settle=QUIET)
        assert track_rows(library.db) == {}
        (music / "download.flac.part").rename(music / "download.wav")  # the download completed
        assert wait_for(lambda: tagged(library.db, music / "download.wav"))
    assert list(track_rows(library.db)) == [str(music / "download.wav")]


def test_own_tag_write_does_not_trigger_a_second_classification(library: Library, music: Path, staging: Path) -> None:
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "one.wav", 4), music / "one.wav")
        assert wait_for(lambda: tagged(library.db, music / "one.wav"))
        # the write (temp file renamed over the track) is seen and triaged as unchanged
        assert wait_for(lambda: daemon.counts["skipped"] >= 1, timeout=10)
        assert daemon.wait_idle(10, settle=4 * QUIET)
        assert result_count(library.db) == 1
        assert daemon.counts["tagged"] == 1
        assert open_tags(music / "one.wav").read_genres()


# ---------------------------------------------------------------------------- moves and deletions
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")  # watchdog's own note on a re-watched folder
def test_moves_update_the_path_without_reclassifying(library: Library, music: Path, staging: Path) -> None:
    (music / "album").mkdir()
    make(music / "a.wav", 0)
    make(music / "album" / "b.flac", 1)
    make(music / "c.wav", 2)
    with running(library, [music]) as daemon:  # the catch-up tags all three
        assert wait_for(lambda: all(tagged(library.db, p) for p in music.rglob("*.*")))
        assert daemon.wait_idle(10, settle=2 * QUIET)
        before = result_count(library.db)
        assert before == 3

        (music / "a.wav").rename(music / "renamed.wav")  # rename
        (music / "later").mkdir()
        (music / "album").rename(music / "later" / "album2")  # a folder move
        shutil.move(music / "c.wav", staging / "c.wav")  # out of the tree (looks like a deletion)...
        assert wait_for(lambda: track_rows(library.db).get(str(music / "c.wav"), ("",))[0] == TrackStatus.GONE)
        shutil.move(staging / "c.wav", music / "back.wav")  # ...and back in: found by fingerprint

        expected = {
            str(music / "renamed.wav"): (TrackStatus.DONE, 1),
            str(music / "later" / "album2" / "b.flac"): (TrackStatus.DONE, 1),
            str(music / "back.wav"): (TrackStatus.DONE, 1),
        }
        assert wait_for(lambda: track_rows(library.db) == expected), track_rows(library.db)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    assert track_rows(library.db) == expected
    assert result_count(library.db) == before
    assert daemon.counts["moved"] >= 3


def test_deleted_tracks_are_marked_gone(library: Library, music: Path) -> None:
    make(music / "keep.wav", 0)
    make(music / "delete.wav", 1)
    make(music / "folder" / "x.wav", 2)
    make(music / "folder" / "deep" / "y.flac", 3)
    with running(library, [music]) as daemon:
        assert wait_for(lambda: len(track_rows(library.db)) == 4 and daemon.is_idle())
        (music / "delete.wav").unlink()
        shutil.rmtree(music / "folder")
        gone = {str(music / "delete.wav"), str(music / "folder" / "x.wav"), str(music / "folder" / "deep" / "y.flac")}
        assert wait_for(lambda: {p for p, (s, _) in track_rows(library.db).items() if s == TrackStatus.GONE} == gone)
    assert track_rows(library.db)[str(music / "keep.wav")] == (TrackStatus.DONE, 1)


# ---------------------------------------------------------------------------- bursts, overflow, restarts
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


def test_changes_while_stopped_are_caught_up_at_the_next_start(
    database: Database, tiny_card: ModelCard, music: Path
) -> None:
    make(music / "first.wav", 0)
    make(music / "second.wav", 1)
    with running(Library(database, tiny_card), [music]) as daemon:
        assert wait_for(lambda: len(track_rows(database)) == 2 and daemon.is_idle())
    status = read_status(status_file_for(database.url))
    assert status is not None and status["state"] == "stopped" and not status["running"]
    assert status["counts"]["tagged"] == 2 and status["errors"] == 0
    shown = CliRunner().invoke(app, ["status", "--db", str(database.url.removeprefix("sqlite:///"))])
    assert shown.exit_code == 3 and "stopped" in shown.output and "2 tagged" in shown.output, shown.output

    make(music / "added.flac", 2)  # while stopped
    (music / "second.wav").unlink()
    with running(Library(Database(database.url), tiny_card), [music]) as daemon:
        assert daemon.caught_up.is_set()
        rows = track_rows(database)
        assert tagged(database, music / "added.flac")
        assert rows[str(music / "second.wav")][0] == TrackStatus.GONE
        assert rows[str(music / "first.wav")] == (TrackStatus.DONE, 1)  # unchanged: not classified again


def test_periodic_reconcile_finds_what_the_observer_missed(
    library: Library, music: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 3600.0)  # no re-arming of the stopped observer
    make(music / "a.wav", 0)
    with running(library, [music], reconcile_hours=1 / 3600) as daemon:
        assert wait_for(lambda: tagged(library.db, music / "a.wav"))
        for observer in daemon.watched.observers.values():  # events dropped, as the OS may do
            observer.stop()
            observer.join()
        (music / "a.wav").unlink()
        make(music / "b.flac", 1)
        assert wait_for(lambda: tagged(library.db, music / "b.flac"), timeout=20)
        assert wait_for(lambda: track_rows(library.db)[str(music / "a.wav")][0] == TrackStatus.GONE, timeout=20)


def test_a_root_deleted_and_recreated_is_watched_again(
    library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 0.2)
    make(music / "old.wav", 0)
    with running(library, [music]) as daemon:
        assert tagged(library.db, music / "old.wav")
        shutil.rmtree(music)
        assert wait_for(lambda: str(music) in daemon.status()["missing_roots"], timeout=10), daemon.status()
        assert "1 missing" in daemon._status_line()
        music.mkdir()
        assert wait_for(lambda: not daemon.status()["missing_roots"], timeout=10)
        shutil.copy(make(staging / "new.wav", 1), music / "new.wav")
        assert wait_for(lambda: tagged(library.db, music / "new.wav"), timeout=20)
        (music / "sub").mkdir()  # and the new observer watches the whole tree, not just the top folder
        shutil.copy(make(staging / "deep.flac", 2), music / "sub" / "deep.flac")
        assert wait_for(lambda: tagged(library.db, music / "sub" / "deep.flac"), timeout=20)


def test_a_root_that_goes_away_keeps_its_tracks_and_is_caught_up_when_back(
    library: Library, music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like an unmounted disk: the folder goes away whole (no per-file deletions) and comes back."""
    monkeypatch.setattr("tagger.daemon.roots.ROOT_CHECK_SECONDS", 0.2)
    make(music / "kept.wav", 0)
    away = tmp_path / "unmounted"
    with running(library, [music], reconcile_hours=1 / 3600) as daemon:
        assert tagged(library.db, music / "kept.wav")
        music.rename(away)
        assert wait_for(lambda: str(music) in daemon.status()["missing_roots"], timeout=10)
        gone_at = time.time()
        # a reconcile (every second here) while it is away marks nothing gone
        assert wait_for(lambda: (daemon.last_reconcile or 0) > gone_at + 0.5, timeout=20)
        assert track_rows(library.db)[str(music / "kept.wav")][0] == TrackStatus.DONE
        make(away / "while-away.wav", 1)  # written while it was not watched
        away.rename(music)
        assert wait_for(lambda: tagged(library.db, music / "while-away.wav"), timeout=20)
        assert wait_for(lambda: not daemon.status()["missing_roots"], timeout=10)
    assert track_rows(library.db)[str(music / "kept.wav")] == (TrackStatus.DONE, 1)  # not re-classified


def test_reload_changes_settings_and_keeps_the_queue(library: Library, music: Path, staging: Path) -> None:
    settings = Settings(policy=Policy.OVERWRITE, min_confidence=0.1, watch=WatchSettings(quiet_seconds=QUIET))
    with running(library, [music], reload=lambda: settings) as daemon:
        shutil.copy(make(staging / "q.wav", 1), music / "q.wav")
        assert wait_for(lambda: daemon.queue_length == 1, timeout=5)
        daemon.request_reload()
        assert wait_for(lambda: daemon.library.options.policy is Policy.OVERWRITE, timeout=5)
        assert wait_for(lambda: tagged(library.db, music / "q.wav"))
        assert daemon.library.options.min_confidence == 0.1


def test_reload_with_a_new_top_k_re_decides_the_library_from_stored_results(library: Library, music: Path) -> None:
    make(music / "a.wav", 0)
    settings = Settings(top_k=2, watch=WatchSettings(quiet_seconds=QUIET, reconcile_hours=0.0))
    with running(library, [music], reload=lambda: settings) as daemon:
        assert len(open_tags(music / "a.wav").read_genres()) == 1
        daemon.request_reload()
        assert wait_for(lambda: len(open_tags(music / "a.wav").read_genres()) == 2, timeout=20)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    assert track_rows(library.db)[str(music / "a.wav")] == (TrackStatus.DONE, 2)  # re-decided once


def test_idle_daemon_releases_its_workers(
    library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tagger.daemon.processor.POOL_IDLE_SECONDS", 0.5)
    with running(library, [music]) as daemon:
        shutil.copy(make(staging / "a.wav", 1), music / "a.wav")
        assert wait_for(lambda: tagged(library.db, music / "a.wav"))
        assert wait_for(lambda: not daemon.processor.pool_held, timeout=10)
        shutil.copy(make(staging / "b.wav", 2), music / "b.wav")  # work again after the release
        assert wait_for(lambda: tagged(library.db, music / "b.wav"))


def test_polling_observer(library: Library, music: Path, staging: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tagger.daemon.roots.POLL_INTERVAL", 0.5)
    with running(library, [music], polling=True) as daemon:
        shutil.copy(make(staging / "p.flac", 3), music / "p.flac")
        assert wait_for(lambda: tagged(library.db, music / "p.flac"), timeout=20)
        assert daemon.status()["observers"] == {str(music): "polling"}


# ---------------------------------------------------------------------------- the real command
def test_sigterm_stops_tagger_watch_promptly_and_cleanly(
    tmp_path: Path, music: Path, staging: Path, tiny_card: ModelCard
) -> None:
    db_path = tmp_path / "state" / "tagger.db"
    notify_path = str(tmp_path / "notify.sock")
    sources = [make(staging / f"s{i:02d}.wav", i) for i in range(20)]
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "TAGGER_CONFIG", "TAGGER_DB")}
    env |= {
        "NOTIFY_SOCKET": notify_path,
        "WATCHDOG_USEC": "400000",
        "INVOCATION_ID": "test",
        "TAGGER_CONFIG": str(tmp_path / "none.toml"),
    }
    command = [sys.executable, "-m", "tagger.cli", "watch", str(music), "--db", str(db_path)]
    command += ["--model", str(TINY_CARD), "--quiet-seconds", str(QUIET), "--reconcile-hours", "0"]
    messages: list[str] = []
    with datagram_socket(notify_path) as sock:
        process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        try:

            def received(wanted: str) -> bool:
                with_timeout = time.monotonic() + 30
                while wanted not in messages and time.monotonic() < with_timeout:
                    try:
                        messages.extend(sock.recv(4096).decode().split("\n"))
                    except TimeoutError:
                        break
                return wanted in messages

            assert received("READY=1"), messages
            for source in sources:
                shutil.copy(source, music / source.name)

            def applied() -> int:
                with sqlite3.connect(db_path) as connection:
                    return connection.execute("SELECT count(*) FROM tag_writes WHERE status='applied'").fetchone()[0]

            assert wait_for(lambda: applied() >= 3, timeout=30)
            assert received("WATCHDOG=1")
            process.send_signal(signal.SIGHUP)
            assert received("RELOADING=1")
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(10)
            exit_seconds = time.monotonic() - sent
            assert received("STOPPING=1")
        finally:
            if process.poll() is None:
                process.kill()
            stderr = process.stderr.read() if process.stderr else ""
    print(f"\nSIGTERM -> exit {returncode} in {exit_seconds:.2f} s")
    assert returncode == 0, stderr
    assert exit_seconds < 5
    lines = [line for line in stderr.splitlines() if line.startswith("<")]
    assert any(line.startswith("<6>tagged ") for line in lines), stderr  # journald priority prefixes
    assert any("SIGTERM: stopping" in line for line in lines)
    assert any("config reloaded" in line for line in lines)
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    result = CliRunner().invoke(app, ["status", "--db", str(db_path), "--json"])
    assert result.exit_code == 3, result.output  # not running
    assert '"state": "stopped"' in result.output

    # the next start finishes what the stop abandoned, classifying each track exactly once
    database = Database(db_path)
    with running(Library(database, tiny_card), [music]) as daemon:
        assert wait_for(lambda: all(tagged(database, music / s.name) for s in sources), timeout=60)
        assert daemon.wait_idle(10, settle=2 * QUIET)
    assert all(count == 1 for _, count in track_rows(database).values())


def test_sighup_with_a_badly_typed_setting_keeps_the_old_settings(tmp_path: Path, music: Path, staging: Path) -> None:
    db_path = tmp_path / "state" / "tagger.db"
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{TINY_CARD}"\nmin_confidence = 0.0\n')
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID", "TAGGER_DB")}
    command = [sys.executable, "-m", "tagger.cli", "watch", str(music), "--db", str(db_path), "--config", str(config)]
    command += ["--quiet-seconds", str(QUIET), "--reconcile-hours", "0"]
    status_path = status_file_for(f"sqlite:///{db_path}")

    def status() -> dict[str, object]:
        return read_status(status_path) or {}

    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: status().get("state") == "watching", timeout=60), status()
        config.write_text(f'model = "{TINY_CARD}"\nmin_confidence = "high"\n')
        process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: status().get("config_error"), timeout=20), status()
        shutil.copy(make(staging / "new.wav", 2), music / "new.wav")  # classified under the old settings
        database = Database(db_path)
        assert wait_for(lambda: tagged(database, music / "new.wav"), timeout=60), status()
        shown = CliRunner().invoke(app, ["status", "--db", str(db_path)])
        assert "reload refused, previous settings kept" in shown.output and "min_confidence" in shown.output
        config.write_text(f'model = "{TINY_CARD}"\nmin_confidence = 0.2\n')
        process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: status().get("min_confidence") == 0.2, timeout=20), status()
        assert status()["config_error"] is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.stderr.read() if process.stderr else ""
    refused = [line for line in stderr.splitlines() if "config reload failed" in line]
    assert len(refused) == 1, stderr
    assert refused[0].endswith(f'{config}: min_confidence: expected a number from 0 to 1, got "high"'), stderr
    assert "Traceback" not in stderr and "failed" not in stderr.replace("config reload failed", ""), stderr
