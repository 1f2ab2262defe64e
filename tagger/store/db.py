"""Opening the database: a SQLite file or a SQLAlchemy URL (PostgreSQL and MariaDB tested); SQLite gets WAL, a busy
timeout and foreign keys.

Every database failure leaves this module as a :class:`~tagger.errors.DatabaseError` whose text is one line
naming the database (password masked) and the reason (:func:`_reason`): the CLI prints it as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from platformdirs import user_data_dir
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from tagger.config import database_url
from tagger.errors import DatabaseError

BUSY_TIMEOUT_MS = 30_000
# Session-level advisory lock (PostgreSQL) / named lock (MariaDB, MySQL) standing for the writer lock.
_PG_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"genre-tagger writer", digest_size=8).digest(), "big", signed=True)
_SQLITE_LOCK_BYTES = 1 << 40  # byte offsets in the SQLite lock file standing for a file's keys (never written)


def migrations_dir() -> Path:
    """Alembic scripts: shipped inside the wheel, or the repository's ``migrations/`` in a checkout."""
    packaged = Path(__file__).resolve().parents[1] / "_migrations"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "migrations"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Turning a new file to WAL needs it alone for a moment, and SQLite answers "locked" at once rather than
    # waiting out the busy timeout: a second process starting at the same moment retries until that timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file SQLite opens for ``url`` (``sqlite:///x.db?timeout=5`` -> ``x.db``), as the engine reads the URL;
    None for an in-memory SQLite database or another engine. The one rule for the files kept beside the
    database: its folder, writer lock, the daemon's status file and the learned vocabularies."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def display_name(url: str) -> str:
    """The database as the user named it, for messages: the file for SQLite, the URL without its password."""
    if (file := sqlite_file(url)) is not None:
        return str(file)
    if url.startswith("sqlite"):
        return ":memory:"
    return masked_url(url)


def masked_url(url: str) -> str:
    """``url`` with its password hidden; an unparsable one keeps only its scheme (the rest may hold a password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://")[0] + "://…"


def _reason(error: BaseException, url: str) -> str:
    """Why ``error`` happened, in one line, with the URL's password removed."""
    if isinstance(error, NoSuchModuleError | ModuleNotFoundError):
        scheme = url.split("://")[0]
        extras = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
        extra = extras.get(scheme.split("+")[0])
        return f"no driver for {scheme}" + (f" (pip install 'genre-tagger[{extra}]')" if extra else "")
    if isinstance(error, OSError):
        return f"{error.strerror or error}: {error.filename}" if error.filename else str(error.strerror or error)
    original = getattr(error, "orig", None) or error
    message = " ".join(str(original).split())  # drivers write several lines (psycopg: host, port, hint)
    lowered = message.lower()
    if "database is locked" in lowered:
        message = "locked by another process for longer than the busy timeout; try again when it has finished"
    elif "file is not a database" in lowered or "malformed" in lowered:
        message = f"not a SQLite database, or damaged ({message})"
    elif "unable to open database file" in lowered and (file := sqlite_file(url)) is not None:
        folder = file.parent
        if folder.is_dir() and not os.access(folder, os.W_OK):  # WAL mode needs its -wal and -shm files there
            message = f"{message}: its folder {folder} is read-only"
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return message


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn any failure of the database (or of its folder) into one :class:`DatabaseError` line."""
    try:
        yield
    except DatabaseError:
        raise
    except (SQLAlchemyError, CommandError, NoSuchModuleError, ModuleNotFoundError, OSError) as error:
        raise DatabaseError(f"database {display_name(url)}: {_reason(error, url)}") from error


def track_lock_keys(path: str | os.PathLike[str]) -> set[int]:
    """What two recorders of the same file both lock, as 63-bit keys: its resolved path (a symlink and its target
    are one file) and its inode (hard links, which are written in place, share it)."""
    real = os.path.realpath(path)
    names = [f"path {real}"]
    with contextlib.suppress(OSError):  # a vanished file: its record fails on its own, the path key is enough
        st = os.stat(real)
        names.append(f"inode {st.st_dev}:{st.st_ino}")
    return {_key(name.encode("utf-8", "surrogateescape")) for name in names}


def _key(name: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") >> 1  # >= 0, fits a signed bigint


def _lock_byte(fd: int, offset: int, kind: int = fcntl.F_WRLCK) -> None:
    """An exclusive open-file-description lock on one byte of ``fd`` (beyond its end is fine), waiting for it, or
    its release (``F_UNLCK``): unlike ``lockf``'s process-wide locks, two threads of one process exclude each other
    with these."""
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (0 for OFD locks)
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, request)


def insert_if_absent(session: Session, model: type[DeclarativeBase], **values: Any) -> None:
    """INSERT that does nothing when a unique key exists already: another process recorded that row meanwhile."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(model).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(model).values(**values).on_conflict_do_nothing())
    elif dialect in ("mysql", "mariadb"):
        session.execute(insert(model).values(**values).prefix_with("IGNORE"))
    else:
        session.execute(insert(model).values(**values))


class Database:
    """An engine plus sessions; the schema is brought to the newest migration on open."""

    def __init__(self, url: str | os.PathLike[str] | None = None, migrate: bool = True) -> None:
        self.url = database_url(os.fspath(url) if url else None)
        self.name = display_name(self.url)
        with database_errors(self.url):
            if (file := sqlite_file(self.url)) is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, connect_args=self._connect_args(), **self._pool_args())
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _configure_sqlite)
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
            # SQLite has one writer at a time, and its busy handler sleeps (1 to 100 ms) when this process's
            # recorders contend for it: their writing sessions take turns here instead (file writes still overlap).
            self._writing_turns = threading.RLock() if self.engine.dialect.name == "sqlite" else None
            if migrate:
                self.migrate()

    def _connect_args(self) -> dict[str, Any]:
        if not self.url.startswith("sqlite") or "timeout" in make_url(self.url).query:
            return {}  # a timeout in the URL (sqlite:///x.db?timeout=5) is the user's choice
        return {"timeout": BUSY_TIMEOUT_MS / 1000}

    def _pool_args(self) -> dict[str, Any]:
        if self.url.startswith("sqlite") and sqlite_file(self.url) is None:
            return {}  # in memory: one connection, SQLAlchemy's own pool for it
        # Concurrent recorders (tagger.recorders, at most 16) each hold a lock connection and a session's: kept
        # open rather than opened per track (a PostgreSQL connection costs milliseconds); opened only when needed.
        return {"pool_size": 40, "max_overflow": 10}

    def migrate(self) -> None:
        """Apply every Alembic migration not applied yet (no-op when up to date).

        A schema from a newer version of genre-tagger is refused before anything is written.
        """
        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        scripts = ScriptDirectory.from_config(config)
        with database_errors(self.url):
            with self.engine.connect() as connection:
                if self._revisions(connection, scripts) == set(scripts.get_heads()):
                    return
            with self.writer_lock(), self.engine.connect() as connection:  # two first starts must not race
                sqlite = connection.dialect.name == "sqlite"
                if sqlite:
                    # Batch migrations recreate a table; with foreign keys on, dropping the old `tracks`
                    # would cascade into every result and tag write. The pragma only works outside a transaction.
                    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                    connection.commit()
                    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE: every CREATE/ALTER of a
                    # migration would commit on its own, and a run killed half-way left a schema no later start
                    # could finish ("table tracks already exists"). Driver autocommit plus an explicit BEGIN puts
                    # the whole upgrade in one SQLite transaction: all of it, or none.
                    raw = connection.connection.dbapi_connection
                    saved_isolation = raw.isolation_level  # type: ignore[union-attr]
                    raw.isolation_level = None  # type: ignore[union-attr]
                try:
                    with connection.begin():
                        if sqlite:
                            connection.exec_driver_sql("BEGIN IMMEDIATE")
                        self._revisions(connection, scripts)  # again: the other start may have upgraded meanwhile
                        config.attributes["connection"] = connection
                        command.upgrade(config, "head")
                finally:
                    if sqlite:
                        raw.isolation_level = saved_isolation  # type: ignore[union-attr]
                        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                        connection.commit()

    def _revisions(self, connection: Connection, scripts: ScriptDirectory) -> set[str]:
        current = set(MigrationContext.configure(connection).get_current_heads())
        unknown = sorted(current - {script.revision for script in scripts.walk_revisions()})
        if unknown:
            raise DatabaseError(
                f"database {self.name}: its schema (revision {', '.join(unknown)}) is from a newer genre-tagger; "
                "upgrade genre-tagger to use it"
            )
        return current

    @contextmanager
    def session(self, writing: bool = False) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error. ``writing``: one of the short writing
        transactions recorders of this process run side by side (on SQLite they take turns)."""
        turns = self._writing_turns if writing and self._writing_turns is not None else contextlib.nullcontext()
        with turns, database_errors(self.url), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise "read tags, decide, record, write file" across processes (a scan beside the daemon).

        Classification stays parallel; only the short store-and-tag step takes this lock, so two
        processes never write the same file from the same stale reading. It is the database's own lock
        where there is one (PostgreSQL advisory lock, MariaDB/MySQL named lock), so processes of different
        users, on different machines, exclude each other; for SQLite a file lock beside the database file.
        """
        with database_errors(self.url):
            dialect = self.engine.dialect.name
            if dialect == "postgresql":
                key = {"key": _PG_LOCK_KEY}  # pg_advisory_lock waits for ever and returns nothing
                # Autocommit: no BEGIN/ROLLBACK round trips per track, and no transaction left idle (holding back
                # vacuum) while the lock is held; a session-level advisory lock needs no transaction.
                lock = ("SELECT 1 FROM pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", key, "AUTOCOMMIT")
                with self._server_lock(*lock):
                    yield
            elif dialect in ("mysql", "mariadb"):
                name = {"name": f"genre-tagger writer {self.engine.url.database}"}  # names are server-wide
                # MariaDB takes a negative timeout as 0, not as "wait for ever": a year is for ever here.
                with self._server_lock("SELECT GET_LOCK(:name, 31536000)", "SELECT RELEASE_LOCK(:name)", name):
                    yield
            else:
                with self._file_lock():
                    yield

    @contextmanager
    def track_lock(self, path: str | os.PathLike[str]) -> Iterator[None]:
        """Serialise "read tags, decide, record, write file" for one file, so that recorders of other files run
        at the same time (threads of one scan, the daemon, other machines' scans): their file writes, which wait on
        the disk, and their database round trips overlap.

        Held: the writer lock in shared mode (:meth:`writer_lock` excludes every recorder: crash recovery, restore,
        migrations), plus one exclusive lock per key of the file (:func:`track_lock_keys`: its resolved path, and
        its inode, which its hard links share). PostgreSQL: advisory locks; SQLite: a shared ``flock`` of the lock
        file plus open-file-description byte-range locks in it, one byte per key. MariaDB/MySQL have no shared
        named lock: there this is the writer lock itself (one recorder at a time, as before).
        """
        keys = sorted(track_lock_keys(path))
        with database_errors(self.url):
            dialect = self.engine.dialect.name
            if dialect == "postgresql":
                # Taken in one order by every recorder (the select list is evaluated left to right), released in
                # reverse: two recorders never wait on each other.
                parameters = {"writer": _PG_LOCK_KEY} | {f"k{i}": key for i, key in enumerate(keys)}
                take = ["pg_advisory_lock_shared(:writer)", *(f"pg_advisory_lock(:k{i})" for i in range(len(keys)))]
                give = [f"pg_advisory_unlock(:k{i})" for i in reversed(range(len(keys)))]
                give.append("pg_advisory_unlock_shared(:writer)")
                acquire = f"SELECT 1 FROM (SELECT {', '.join(take)}) AS taken"
                with self._server_lock(acquire, f"SELECT {', '.join(give)}", parameters, "AUTOCOMMIT"):
                    yield
            elif dialect in ("mysql", "mariadb") or not hasattr(fcntl, "F_OFD_SETLKW"):
                with self.writer_lock():
                    yield
            else:
                with self._file_lock(fcntl.LOCK_SH) as handle:
                    # In one order (by offset), released with the handle: an open file description's locks go with it.
                    for offset in sorted({1 + key % _SQLITE_LOCK_BYTES for key in keys}):  # byte 0: the turnstile
                        _lock_byte(handle.fileno(), offset)
                    yield

    @contextmanager
    def _server_lock(
        self, acquire: str, release: str, parameters: dict[str, Any], isolation: str | None = None
    ) -> Iterator[None]:
        # Held by one pooled connection for the block; a session-level lock outlives its transactions.
        with self.engine.connect() as connection:
            if isolation is not None:
                connection.execution_options(isolation_level=isolation)
            if connection.execute(text(acquire), parameters).scalar() != 1:  # GET_LOCK: 0 timed out, NULL failed
                raise DatabaseError(f"database {self.name}: could not take the writer lock")
            try:
                yield
            finally:
                connection.execute(text(release), parameters)

    @contextmanager
    def _file_lock(self, mode: int = fcntl.LOCK_EX) -> Iterator[IO[str]]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as handle:
            # flock lets new shared holders in ahead of a waiting exclusive one: with recorders coming and going, a
            # crash recovery could wait for a whole scan. Byte 0 is a turnstile, held while waiting for the flock:
            # a waiting writer lock makes new recorders queue behind it.
            gate = hasattr(fcntl, "F_OFD_SETLKW")
            if gate:
                _lock_byte(handle.fileno(), 0)
            fcntl.flock(handle, mode)
            if gate:
                _lock_byte(handle.fileno(), 0, fcntl.F_UNLCK)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def _lock_path(self) -> Path:
        if (file := sqlite_file(self.url)) is not None:
            return file.with_name(file.name + ".lock")
        digest = hashlib.sha1(self.url.encode()).hexdigest()[:16]
        return Path(user_data_dir("genre-tagger")) / f"writer-{digest}.lock"

    def dispose(self) -> None:
        self.engine.dispose()
