"""Throw-away database servers for the tests (PostgreSQL, MariaDB): a temp dir, 127.0.0.1 only, a free port."""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTGRES_USER = "tagger"
POSTGRES_PASSWORD = "s3cret-pw"  # also the MariaDB user's
MARIADB_USER = "tagger"


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


def mariadb_bin() -> Path | None:
    """Debian's MariaDB server binaries (mariadbd, mariadb-install-db)."""
    for folder in ("/usr/sbin", "/usr/bin"):
        if Path(folder, "mariadbd").exists() and shutil.which("mariadb-install-db"):
            return Path(folder)
    return None


@dataclass(frozen=True)
class MariaDBServer:
    port: int
    socket: Path

    def url(self, database: str = "") -> str:
        return f"mysql+pymysql://{MARIADB_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def create_database(self) -> str:
        import pymysql

        name = f"t_{uuid.uuid4().hex[:12]}"
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user=MARIADB_USER, password=POSTGRES_PASSWORD)
        with connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return self.url(name)


@contextmanager
def mariadb_server() -> Iterator[MariaDBServer]:
    """mariadb-install-db + mariadbd in a temp dir, 127.0.0.1 on a free port; killed and deleted after."""
    import pymysql

    binaries = mariadb_bin()
    assert binaries is not None
    # As root, mariadbd runs as the `mysql` system user, which owns the directory.
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="tagger-mariadb-"))
    if user:
        shutil.chown(base, "mysql")
    data, sock, port, tmp = base / "data", base / "mysqld.sock", free_port(), base / "tmp"
    tmp.mkdir()
    if user:
        shutil.chown(tmp, "mysql")
    # --no-defaults: Debian's my.cnf names one pid file and socket in /run/mysqld for every server, and two test
    # sessions at once (pytest-xdist workers) bootstrapping into them made one install fail. --tmpdir of its own: a
    # server deletes every #sql* file in its tmpdir when it starts, another worker's bootstrap temp tables included
    # (CI: "Unknown table 'mysql.tmp_user_sys'").
    install = [
        "mariadb-install-db",
        "--no-defaults",
        *user,
        f"--datadir={data}",
        f"--tmpdir={tmp}",
        "--auth-root-authentication-method=normal",
    ]
    options = [f"--datadir={data}", f"--tmpdir={tmp}", f"--socket={sock}", f"--port={port}", "--bind-address=127.0.0.1",
               "--skip-name-resolve", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"]  # fmt: skip
    try:
        # One bootstrap at a time on this machine (pytest-xdist workers each start a server); it takes a second or two.
        with open(Path(tempfile.gettempdir()) / "tagger-mariadb-install.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            installed = subprocess.run([*install, "--skip-test-db"], capture_output=True, text=True, timeout=120)
        if installed.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({installed.returncode}): {installed.stderr[-2000:]}")
        with open(base / "log", "wb") as log:
            server = subprocess.Popen([str(binaries / "mariadbd"), "--no-defaults", *user, *options], stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:  # up when its socket answers
                try:
                    root = pymysql.connect(unix_socket=str(sock), user="root", password="")
                    break
                except pymysql.err.OperationalError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.1)
            with root, root.cursor() as cursor:
                cursor.execute(f"CREATE USER '{MARIADB_USER}'@'127.0.0.1' IDENTIFIED BY '{POSTGRES_PASSWORD}'")
                cursor.execute(f"GRANT ALL ON *.* TO '{MARIADB_USER}'@'127.0.0.1'")
            yield MariaDBServer(port, sock)
        finally:
            server.kill()
            server.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)
