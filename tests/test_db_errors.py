"""Database failures through the real CLI: one line naming the database (password masked), exit 1, nothing damaged."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tagger.store import Database
from tests.conftest import TINY_CARD
from tests.servers import POSTGRES_PASSWORD, MariaDBServer, PostgresServer, free_port


def tagger(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "80"}
    env.pop("TAGGER_DB", None)
    return subprocess.run([sys.executable, "-m", "tagger.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 1 and exactly one line of output, saying ``expected``; returns the line."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1, result.stdout + result.stderr
    for text in expected:
        assert text.lower() in lines[0].lower(), lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def tmpfs(mountpoint: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small real file system (a full disk, a read-only folder); needs root with CAP_SYS_ADMIN."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
                                           capture_output=True).returncode:  # fmt: skip
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_a_corrupt_database_file_is_named_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "tagger.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))  # the header, then garbage
    before = digest(db)
    for command in (["report"], ["scan", str(tmp_path)], ["restore"]):
        one_line_error(tagger(*command, "--db", str(db), tmp_path=tmp_path), f"database {db}", "damaged")
    assert digest(db) == before


def test_a_schema_from_a_newer_version_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    db = tmp_path / "tagger.db"
    Database(db).dispose()
    with sqlite3.connect(db) as connection:
        connection.execute("update alembic_version set version_num = '0099_future'")
    connection.close()
    before = digest(db)
    one_line_error(tagger("report", "--db", str(db), tmp_path=tmp_path), str(db), "0099_future", "newer genre-tagger")
    assert digest(db) == before


def test_a_database_locked_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "tagger.db"
    Database(db).dispose()
    (music := tmp_path / "music").mkdir()
    (music / "notes.flac").write_text("not audio: its failure is recorded, which needs the write lock")
    holder = subprocess.Popen(  # another process holds the write lock (as for 45 s) until told to stop
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('begin exclusive'); print('held', flush=True); sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        url = f"sqlite:///{db}?timeout=1"  # the busy timeout (30 s by default), shortened for the test
        result = tagger("scan", str(music), "--db", url, "--model", str(TINY_CARD), tmp_path=tmp_path)
        one_line_error(result, f"database {db}", "locked by another process")
    finally:
        holder.communicate("")
    with sqlite3.connect(db) as connection:
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
        assert connection.execute("select count(*) from tracks").fetchone() == (0,)
    connection.close()


def test_a_read_only_folder(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as folder:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        for db in (folder / "tagger.db", folder / "new" / "tagger.db"):
            one_line_error(tagger("report", "--db", str(db), tmp_path=tmp_path), f"database {db}", "Read-only")


def test_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "400k") as folder:
        db = folder / "tagger.db"
        Database(db).dispose()
        (music := tmp_path / "music").mkdir()
        for i in range(40):  # failures recorded with long reasons fill what is left quickly
            (music / f"notes{i:02d}-{'x' * 200}.flac").write_text("not audio")
        try:  # fill the disk to the last block
            with open(folder / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
        except OSError:
            pass
        result = tagger("scan", str(music), "--db", str(db), "--model", str(TINY_CARD), tmp_path=tmp_path)
        if result.returncode == 0:
            pytest.skip("the disk did not fill up")
        one_line_error(result, f"database {db}", "full")
        (folder / "filler").unlink()  # room again: the database is whole, holding what was committed
        with sqlite3.connect(db) as connection:
            assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
        connection.close()


def test_an_unreachable_server(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://tagger:{POSTGRES_PASSWORD}@127.0.0.1:{free_port()}/music"
    line = one_line_error(tagger("report", "--db", url, tmp_path=tmp_path), "127.0.0.1", "refused")
    assert POSTGRES_PASSWORD not in line and "***" in line


def test_a_wrong_password(tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.url(password="wrong-password")
    line = one_line_error(tagger("report", "--db", url, tmp_path=tmp_path), f"127.0.0.1:{postgres.port}/postgres",
                          "password authentication failed")  # fmt: skip
    assert "wrong-password" not in line


def test_a_missing_driver_says_which_extra_to_install(tmp_path: Path) -> None:
    one_line_error(tagger("report", "--db", "mysql+nosuchdriver://u:pw@127.0.0.1/x", tmp_path=tmp_path), "mysql")


def test_a_wrong_password_on_mariadb(tmp_path: Path, mariadb: MariaDBServer) -> None:
    url = mariadb.url().replace(POSTGRES_PASSWORD, "wrong-password")
    result = tagger("report", "--db", url, tmp_path=tmp_path)
    line = one_line_error(result, f"127.0.0.1:{mariadb.port}", "Access denied")
    assert "wrong-password" not in line
