"""The real ``tagger watch`` process: signals, sd_notify, journald lines, the status a second process reads."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from tagger.cli import app
from tagger.daemon.status import read_status, status_file_for
from tagger.model import ModelCard
from tagger.record import Library
from tagger.store import Database
from tests.conftest import TINY_CARD
from tests.daemon.harness import QUIET, REPO, make, running, tagged, track_rows, wait_for
from tests.test_systemd import datagram_socket


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
                    except TimeoutError:  # one recv's 5 s; a loaded machine may start slower than that
                        continue
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
