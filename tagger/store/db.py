"""Opening the database: any SQLAlchemy URL; SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from platformdirs import user_data_dir
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tagger.config import database_url

BUSY_TIMEOUT_MS = 30_000


def migrations_dir() -> Path:
    """Alembic scripts: shipped inside the wheel, or the repository's ``migrations/`` in a checkout."""
    packaged = Path(__file__).resolve().parents[1] / "_migrations"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "migrations"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """An engine plus sessions; the schema is brought to the newest migration on open."""

    def __init__(self, url: str | os.PathLike[str] | None = None, migrate: bool = True) -> None:
        self.url = database_url(os.fspath(url) if url else None)
        if self.url.startswith("sqlite:///") and not self.url.startswith("sqlite:///:memory:"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, connect_args=self._connect_args())
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _configure_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    def _connect_args(self) -> dict[str, Any]:
        return {"timeout": BUSY_TIMEOUT_MS / 1000} if self.url.startswith("sqlite") else {}

    def migrate(self) -> None:
        """Apply every Alembic migration not applied yet (no-op when up to date)."""
        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.writer_lock(), self.engine.begin() as connection:  # two first starts must not race
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise "read tags, decide, record, write file" across processes (a scan beside the daemon).

        Classification stays parallel; only the short store-and-tag step takes this lock, so two
        processes never write the same file from the same stale reading.
        """
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def _lock_path(self) -> Path:
        if self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            return Path(self.url.removeprefix("sqlite:///") + ".lock")
        digest = hashlib.sha1(self.url.encode()).hexdigest()[:16]
        return Path(user_data_dir("genre-tagger")) / f"writer-{digest}.lock"

    def dispose(self) -> None:
        self.engine.dispose()
