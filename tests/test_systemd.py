"""Living under systemd: sd_notify datagrams, and the shipped units (``systemd-analyze verify`` accepts them, the key
directives are there)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tagger.daemon.status import status_file_for
from tagger.systemd import JournalFormatter, Notifier, socket_address, under_journal, watchdog_interval

UNITS = Path(__file__).resolve().parents[1] / "systemd"
SYSTEM = UNITS / "tagger.service"
USER = UNITS / "tagger-user.service"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def directives(unit: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values in order (keys may repeat, e.g. ReadWritePaths=, Environment=)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def runnable_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit with its ExecStart binary replaced by an executable that exists (verify checks it)."""
    binary = tmp_path / "bin" / "tagger"
    binary.parent.mkdir(exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={binary}", unit.read_text(), flags=re.MULTILINE)
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@needs_analyze
@pytest.mark.parametrize("unit", [SYSTEM, USER], ids=["system", "user"])
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    copy = runnable_copy(unit, tmp_path)
    result = analyze("verify", str(copy))
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if copy.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
    if unit is USER:  # also as a user unit (%h, user manager paths), where the environment allows one
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        result = analyze("--user", "verify", str(copy), env={"XDG_RUNTIME_DIR": str(runtime)})
        if "Failed to initialize manager" not in result.stderr:
            assert result.returncode == 0, result.stdout + result.stderr


@needs_analyze
def test_system_unit_exposure_is_low(tmp_path: Path) -> None:
    result = analyze("security", "--offline=yes", str(runnable_copy(SYSTEM, tmp_path)))
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate offline units: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0, result.stdout


def test_system_unit_directives() -> None:
    unit = directives(SYSTEM)
    service = {key.removeprefix("Service."): values for key, values in unit.items() if key.startswith("Service.")}
    assert service["Type"] == ["notify"]
    assert service["User"] == ["genre-tagger"]
    assert service["StateDirectory"] == ["genre-tagger"]
    assert "TAGGER_DB=sqlite:////var/lib/genre-tagger/tagger.db" in service["Environment"]
    assert service["ExecStart"][0].startswith("/usr/local/bin/tagger watch")
    assert "HUP" in service["ExecReload"][0]
    assert service["Restart"] == ["on-failure"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["KillMode"] == ["mixed"]  # SIGTERM to the daemon alone: it stops its workers itself
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateNetwork": "yes",
        "IPAddressDeny": "any",
    }.items():
        assert service[key] == [value], key
    assert "/srv/music" in service["ReadWritePaths"]
    # the one capability: leases on files of other owners (a write waits for downloads to close them)
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == ["CAP_LEASE"]
    assert "MemoryDenyWriteExecute" not in service  # would break cffi callbacks (soundfile)
    assert unit["Install.WantedBy"] == ["multi-user.target"]
    # `tagger status` finds the status file inside the writable StateDirectory
    assert status_file_for("sqlite:////var/lib/genre-tagger/tagger.db").parent == Path("/var/lib/genre-tagger")


def test_user_unit_directives() -> None:
    unit = directives(USER)
    service = {key.removeprefix("Service."): values for key, values in unit.items() if key.startswith("Service.")}
    assert service["Type"] == ["notify"]
    assert "User" not in service
    assert service["ExecStart"][0].startswith("%h/")
    assert "TAGGER_WATCH_ARGS=%h/Music" in service["Environment"]
    assert service["ProtectHome"] == ["read-only"]
    assert "%h/Music" in service["ReadWritePaths"]
    assert "-%h/.local/share/genre-tagger" in service["ReadWritePaths"]  # the default database's folder
    assert service["ProtectSystem"] == ["strict"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["Restart"] == ["on-failure"]
    assert int(service["WatchdogSec"][0]) > 0
    assert unit["Install.WantedBy"] == ["default.target"]


def test_readme_explains_both_units() -> None:
    text = (UNITS / "README.md").read_text()
    assert "systemctl enable --now tagger.service" in text
    assert "systemctl --user enable --now tagger-user.service" in text
    assert "ReadWritePaths=" in text


def datagram_socket(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_sd_notify_sends_ready_to_a_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with datagram_socket(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.ready("watching")
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    name = f"@tagger-test-{os.getpid()}"
    with datagram_socket(socket_address(name)) as sock:
        assert Notifier({"NOTIFY_SOCKET": name}).stopping()
        assert sock.recv(4096) == b"STOPPING=1"
    assert not Notifier({}).ready()  # no systemd: a no-op
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None


def test_journal_logging_has_priority_prefixes_under_systemd() -> None:
    record = logging.LogRecord("tagger.daemon", logging.WARNING, __file__, 1, "root missing: %s", ("/srv",), None)
    assert JournalFormatter("%(message)s").format(record) == "<4>root missing: /srv"
    assert under_journal({"INVOCATION_ID": "0123"})  # started by systemd
    assert not under_journal({})  # a terminal: timestamps instead
