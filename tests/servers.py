"""Throw-away database servers for the tests: a PostgreSQL cluster in a temp dir on 127.0.0.1, free port."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTGRES_USER = "tagger"
POSTGRES_PASSWORD = "s3cret-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (initdb, pg_ctl), the newest version installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str = "postgres", password: str = POSTGRES_PASSWORD) -> str:
        return f"postgresql+psycopg://{POSTGRES_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start (a second or two), password auth over TCP only; stopped and deleted after."""
    binaries = postgres_bin()
    assert binaries is not None
    # PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user.
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="tagger-pg-"))
    data = base / "data"
    (base / "pw").write_text(POSTGRES_PASSWORD)
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pw", "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER, f"--pwfile={base / 'pw'}"]
        subprocess.run([*prefix, *initdb, "--auth=scram-sha-256", "--no-sync", "-E", "UTF8"], **run)
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={base} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                        str(base / "log"), "-w", "start"], **run)  # fmt: skip
        try:
            yield PostgresServer(port)
        finally:
            subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], **run)
    finally:
        shutil.rmtree(base, ignore_errors=True)
