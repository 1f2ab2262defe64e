"""The store on every engine the README promises (a SQLite file, a real PostgreSQL server)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from platformdirs import user_data_dir
from sqlalchemy import create_engine, inspect, select, text

from tagger.daemon import status_file_for
from tagger.model import ModelCard
from tagger.record import Library
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.db import migrations_dir, sqlite_file
from tagger.track import FileState
from tagger.vocabulary import vocabularies_dir


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return str(ScriptDirectory.from_config(config).get_current_head())


def test_migration_creates_the_schema_in_an_empty_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tagger.db"
    Database(path)
    connection = sqlite3.connect(path)
    tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    assert {"tracks", "results", "tag_writes", "alembic_version"} <= tables
    assert connection.execute("select version_num from alembic_version").fetchone() == (head_revision(),)
    assert connection.execute("pragma journal_mode").fetchone() == ("wal",)
    assert connection.execute("pragma integrity_check").fetchone() == ("ok",)


def test_migration_creates_the_schema(any_database: Database) -> None:
    assert {"tracks", "results", "tag_writes", "alembic_version"} <= set(inspect(any_database.engine).get_table_names())
    with any_database.engine.connect() as connection:
        assert connection.scalar(text("select version_num from alembic_version")) == head_revision()


def test_reopening_is_a_no_op(any_database: Database) -> None:
    with any_database.session() as session:
        session.add(Track(path="/music/a.flac", status="done"))
    again = Database(any_database.url)
    with again.session() as session:
        assert session.scalar(select(Track.path)) == "/music/a.flac"
    again.dispose()


def test_non_utf8_file_names_round_trip(any_database: Database) -> None:
    name = b"/music/caf\xe9.flac".decode("utf-8", "surrogateescape")  # Latin-1 name on a UTF-8 system
    with any_database.session() as session:
        session.add(Track(path=name, status="done"))
    with any_database.session() as session:
        assert session.scalar(select(Track.path)) == name
        assert session.scalar(select(Track).where(Track.path == name)) is not None


def test_sizes_past_2_gib_and_nanosecond_mtimes_are_exact(any_database: Database) -> None:
    size, mtime_ns = 5 * 2**30 + 7, 1_764_582_542_123_456_789  # 32-bit INTEGER / FLOAT columns lose both
    with any_database.session() as session:
        session.add(Track(path="/music/long.flac", status="done", size=size, mtime_ns=mtime_ns))
    with any_database.session() as session:
        assert session.execute(select(Track.size, Track.mtime_ns)).one() == (size, mtime_ns)


def test_sqlalchemy_url_is_accepted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'url.db'}")
    assert (tmp_path / "url.db").exists()
    assert db.url.startswith("sqlite:///")


def test_a_0001_database_is_upgraded_and_keeps_its_results(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(config, "0001")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "insert into tracks (id, path, status, first_seen, updated_at) "
            "values (1, '/m/a.flac', 'done', '2026-01-01', '2026-01-01')"
        )
        connection.execute(
            "insert into results (track_id, model_id, vocabulary, genres, chosen, confident, windows, created_at) "
            """values (1, 'tiny@1', 'synthetic', '[]', '["drone"]', 1, '{}', '2026-01-01')"""
        )
    database = Database(path)
    with database.session() as session:
        result = session.scalar(select(Result))
        assert result is not None and result.chosen == ["drone"] and result.decided_with is None


def test_upgrade_from_0001_keeps_tracks_unchanged(db_url: str, tmp_path: Path, tiny_card: ModelCard) -> None:
    """A database made by the first release: its float mtimes become the files' exact st_mtime_ns."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    engine = create_engine(db_url)
    audio = tmp_path / "song.flac"
    audio.write_bytes(b"fLaC" + os.urandom(4000))
    os.utime(audio, ns=(1_764_582_542_123_456_789, 1_764_582_542_123_456_789))  # not exact as a float
    stat = audio.stat()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "insert into tracks (path, size, mtime, status, first_seen, updated_at) values "
                "(:path, :size, :mtime, 'done', current_timestamp, current_timestamp), "
                "('/gone/old.flac', 10, 1700000000.25, 'gone', current_timestamp, current_timestamp)"
            ),
            {"path": str(audio), "size": stat.st_size, "mtime": stat.st_mtime},
        )
    engine.dispose()
    database = Database(db_url)
    library = Library(database, tiny_card)
    with database.session() as session:
        stored = session.scalar(select(Track.mtime_ns).where(Track.path == str(audio)))
        if db_url.startswith("mysql"):  # 0001's FLOAT (6 digits as read): such a track is classified once more
            assert stored is not None and stored != stat.st_mtime_ns
        else:
            assert stored == stat.st_mtime_ns
            assert library.is_unchanged(library.known_state(audio), FileState.of(audio))  # not classified again
        old = session.scalar(select(Track.mtime_ns).where(Track.path == "/gone/old.flac"))
        assert old == 1_700_000_000_250_000_000 or db_url.startswith("mysql")
        session.add(Track(path="/music/huge.flac", status=TrackStatus.DONE, size=3 * 2**30))  # now a BIGINT
    database.dispose()


def python_process(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.mark.parametrize("statement", ["CREATE TABLE results", "DROP TABLE tracks", "ALTER TABLE tag_writes"])
def test_a_first_start_killed_during_its_migration_leaves_a_database_the_next_start_opens(
    tmp_path: Path, statement: str
) -> None:
    """A process killed half-way through the first migration (a real second process, ended with os._exit right
    after a chosen DDL statement ran): the next start finds no half-made schema (was: "table tracks already
    exists" for ever after)."""
    path = tmp_path / "tagger.db"
    code = """if True:
        import os, sys
        from sqlalchemy import event
        from tagger.store import Database
        db = Database(sys.argv[1], migrate=False)
        def die(conn, cursor, statement, *rest):
            if statement.lstrip().upper().startswith(sys.argv[2].upper()):
                os._exit(137)  # as SIGKILL would: no rollback, no cleanup
        event.listen(db.engine, "after_cursor_execute", die)
        db.migrate()
        print("not killed")"""
    process = python_process(code, str(path), statement)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 137, stdout + stderr[-2000:]
    database = Database(path)
    names = set(inspect(database.engine).get_table_names())
    assert {"tracks", "results", "tag_writes", "alembic_version"} <= names
    with database.session() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()


def test_two_first_starts_at_once_both_succeed(db_url: str, tmp_path: Path) -> None:
    """Two processes migrating an empty database at the same moment (was: one died creating alembic_version)."""
    code = """if True:
        import sys, time
        from tagger.store import Database
        time.sleep(max(0, float(sys.argv[2]) - time.time()))
        Database(sys.argv[1])
        print("ok")"""
    start = str(time.time() + 6)  # both have imported SQLAlchemy and Alembic by then
    users = [{"XDG_DATA_HOME": str(tmp_path / user), "HOME": str(tmp_path / user)} for user in ("service", "owner")]
    processes = [python_process(code, db_url, start, env=env) for env in users]
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0 and stdout == "ok\n", stderr[-2000:]


def test_the_writer_lock_excludes_other_users_processes(db_url: str, tmp_path: Path) -> None:
    """The service user's daemon and an interactive scan: different data folders, one lock (the database's)."""
    holder = Database(db_url)
    code = """if True:
        import sys
        from tagger.store import Database
        database = Database(sys.argv[1])
        print("ready", flush=True)
        with database.writer_lock():
            print("locked", flush=True)"""
    with holder.writer_lock():
        other = python_process(code, db_url, env={"XDG_DATA_HOME": str(tmp_path / "other-user"), "HOME": str(tmp_path)})
        assert other.stdout is not None and other.stdout.readline() == "ready\n"
        time.sleep(1.5)
        assert other.poll() is None  # still waiting for the lock
    stdout, stderr = other.communicate(timeout=60)
    assert other.returncode == 0 and stdout == "locked\n", stderr[-2000:]
    holder.dispose()


class _Takers:
    """Threads taking locks while the test holds others; :meth:`waits` says whether one had to wait."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def waits(self, lock: Callable[[], AbstractContextManager[None]], seconds: float = 1.0) -> bool:
        """Whether taking ``lock`` in another thread waits at least ``seconds`` (it goes on waiting until let in)."""
        taken = threading.Event()

        def take() -> None:
            with lock():
                taken.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        self.threads.append(thread)
        return not taken.wait(seconds)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive()
        self.threads.clear()


def test_a_track_lock_excludes_recorders_of_the_same_file_only(db_url: str, tmp_path: Path) -> None:
    """Recorders of other files go on; the same file by another name (a symlink, a hard link) waits, as does the
    writer lock (crash recovery, restore). MariaDB has no shared lock: there a track lock is the writer lock."""
    music = tmp_path / "music"
    music.mkdir()
    for name in ("a.flac", "b.flac"):
        (music / name).write_bytes(b"fLaC")
    os.link(music / "a.flac", music / "a hard link.flac")
    (music / "a symlink.flac").symlink_to(music / "a.flac")
    database = Database(db_url)
    parallel = database.engine.dialect.name not in ("mysql", "mariadb")
    takers = _Takers()
    with database.track_lock(music / "a.flac"):
        # Let in at once where records run in parallel (up to 15 s on a loaded machine), else still waiting after 1 s.
        other_file = takers.waits(lambda: database.track_lock(music / "b.flac"), 15.0 if parallel else 1.0)
        assert other_file is not parallel
        assert takers.waits(lambda: database.track_lock(music / "a symlink.flac"))
        assert takers.waits(lambda: database.track_lock(music / "a hard link.flac"))
        assert takers.waits(lambda: database.track_lock(music / "a.flac"))
        assert takers.waits(database.writer_lock)
    takers.join()  # each let in once the file's lock was released
    with database.writer_lock():
        assert takers.waits(lambda: database.track_lock(music / "b.flac"))
    takers.join()
    with database.track_lock(music / "a.flac"):
        assert takers.waits(database.writer_lock)
        # A waiting writer lock is not starved by recorders coming and going: new ones queue behind it.
        assert takers.waits(lambda: database.track_lock(music / "b.flac"))
    takers.join()
    if parallel:
        with database.track_lock(music / "a.flac"), database.track_lock(music / "b.flac"):
            pass  # two files at once in one thread: one lock does not wait on the other
    database.dispose()


# ---------------------------------------------------------------- the one rule for which file a SQLite URL means
# The database, its lock, the daemon's status file and the learned vocabularies all follow the file SQLite
# really opens, however the URL spells it.
@pytest.mark.parametrize(
    ("name", "spelling"),
    [
        ("tagger.db", "sqlite:///{folder}/tagger.db"),
        ("tagger.db", "sqlite:///{folder}/tagger.db?timeout=5"),
        ("tagger.db", "sqlite+pysqlite:///{folder}/tagger.db"),
        ("my db.db", "sqlite:///{folder}/my%20db.db"),  # the engine decodes the URL: it opens "my db.db"
    ],
)
def test_the_files_beside_the_database_follow_the_file_sqlite_opens(tmp_path: Path, name: str, spelling: str) -> None:
    folder = tmp_path / "state"
    url = spelling.format(folder=folder)
    database = Database(url)
    with database.writer_lock():
        pass
    database.dispose()
    file = folder / name
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [name, f"{name}.lock"]
    assert sqlite_file(url) == file
    assert database.name == str(file)
    assert vocabularies_dir(url) == folder / "vocabularies"
    assert status_file_for(url) == folder / f"{name}.status.json"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql://tagger:secret@localhost/tagger", "not a url"]
)
def test_no_file_behind_an_in_memory_or_server_database(url: str) -> None:
    assert sqlite_file(url) is None
    assert vocabularies_dir(url) == Path(user_data_dir("genre-tagger")) / "vocabularies"
