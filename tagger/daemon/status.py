"""What the daemon has done, and the status file ``tagger status`` reads.

Written atomically (temp + rename) about once a second. For an SQLite database it lies beside the
database file as ``<db file>.status.json`` (the service's ``StateDirectory``, writable under
``ProtectSystem=strict``, and found by ``tagger status`` from the same ``--db`` / ``$TAGGER_DB``); for any
other database URL in ``$XDG_STATE_HOME/genre-tagger/status.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from platformdirs import user_state_dir

from tagger.files import write_json_atomically
from tagger.store.db import sqlite_file
from tagger.systemd import Notifier
from tagger.track import Outcome, TrackReport

log = logging.getLogger("tagger.daemon")

STATUS_INTERVAL = 1.0  # seconds between status-file / STATUS= refreshes


class Status(TypedDict):
    """The status file's fields (plus ``updated``; :func:`read_status` adds ``running``)."""

    pid: int
    state: str  # starting, catching-up, watching, reconciling, stopping, stopped, crashed
    started: str | None
    roots: list[str]
    database: str  # the URL, password masked
    observers: dict[str, str]  # root -> inotify | polling
    missing_roots: dict[str, str | None]  # root -> missing since
    queue: int
    in_progress: int
    catch_up_files: int | None  # files checked by the walk in progress
    last_track: dict[str, Any] | None  # path, outcome, at, reason
    errors: int
    counts: dict[str, int]  # outcome -> tracks since start
    last_reconcile: str | None
    policy: str
    min_confidence: float
    config_error: str | None  # why the last reload was refused (the previous settings are kept)


def status_file_for(db_url: str) -> Path:
    """Where the daemon for ``db_url`` writes its status (see the module docstring)."""
    if (database := sqlite_file(db_url)) is not None:
        return database.with_name(database.name + ".status.json")
    return Path(user_state_dir("genre-tagger")) / "status.json"


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file plus ``running`` (is its pid alive?); None if there is none."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    data["running"] = data.get("state") not in ("stopped", "crashed") and _pid_alive(data.get("pid"))
    if data.get("state") not in ("stopped", "crashed") and not data["running"]:
        data["state"] = "dead"  # killed without a chance to say so (SIGKILL, power loss)
    return data


def status_rows(data: dict[str, Any], path: Path) -> list[tuple[str, str]]:
    """The status read from ``path`` (as :func:`read_status` gives it) as named lines for people."""
    last = data.get("last_track") or {}
    refused = data.get("config_error")
    missing, roots = data.get("missing_roots") or {}, data.get("roots") or []
    return [
        ("state", f"{data.get('state')} (pid {data.get('pid')})"),
        ("started", str(data.get("started"))),
        ("roots", ", ".join(f"{r} (missing since {missing[r]})" if r in missing else r for r in roots)),
        ("queue", f"{data.get('queue', 0)} waiting, {data.get('in_progress', 0)} in progress"),
        ("last track", f"{last.get('outcome')} {last.get('path')} at {last.get('at')}" if last else "(none yet)"),
        ("errors since start", str(data.get("errors", 0))),
        ("config", f"reload refused, previous settings kept: {refused}" if refused else "ok"),
        ("since start", ", ".join(f"{n} {k}" for k, n in sorted((data.get("counts") or {}).items())) or "-"),
        ("last reconcile", str(data.get("last_reconcile") or "-")),
        ("updated", str(data.get("updated"))),
        ("status file", str(path)),
    ]


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, owned by the service user
    except OSError:
        return False
    return True


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass
class Progress:
    """What the daemon is doing and has done since start: written by the processor, read for the status."""

    state: str = "starting"
    counts: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    last_track: dict[str, Any] | None = None
    in_progress: int = 0
    config_error: str | None = None  # why the last SIGHUP reload was refused (old settings kept)

    def last(self, path: str, outcome: str, reason: str = "") -> None:
        self.last_track = {"path": path, "outcome": outcome, "at": iso(time.time()), "reason": reason}

    def note(self, report: TrackReport) -> None:
        """Count and log one track's outcome (and its mood's, when moods were decided)."""
        outcome = report.outcome
        self.counts[outcome.value] += 1
        if (mood := report.mood) is not None and mood.outcome in (Outcome.TAGGED, Outcome.WOULD_TAG):
            self.counts[f"mood {mood.outcome.value}"] += 1
            was = ", ".join(mood.existing) or "(none)"
            log.info("%s %s: mood %s -> %s", mood.outcome.value, report.path, was, ", ".join(mood.proposed))
        if outcome is Outcome.SKIPPED:
            log.debug("skipped (unchanged since last seen) %s", report.path)
            return
        self.last(str(report.path), outcome.value, report.reason)
        if outcome is Outcome.FAILED:
            self.errors += 1
            log.warning("failed %s: %s", report.path, report.reason)
        elif outcome is Outcome.MOVED:
            log.info("moved %s (%s)", report.path, report.reason)
        elif outcome in (Outcome.TAGGED, Outcome.WOULD_TAG):
            confidence = f" ({report.confidence:.2f})" if report.confidence is not None else ""
            existing = ", ".join(report.existing) or "(none)"
            log.info("%s %s: %s -> %s%s", outcome.value, report.path, existing, ", ".join(report.proposed), confidence)
        else:  # kept / low-confidence / unchanged: classified, nothing written; noisy in a forced catch-up
            level = logging.DEBUG if outcome is Outcome.UNCHANGED else logging.INFO
            detail = f"file says {', '.join(report.existing) or '(none)'}, model says {', '.join(report.proposed)}"
            log.log(
                level, "%s %s: %s%s", outcome.value, report.path, detail, f" ({report.reason})" * bool(report.reason)
            )

    def gone(self, path: str) -> None:
        self.counts["gone"] += 1
        self.last(path, "gone")
        log.info("gone %s", path)

    def moved_folder(self, tracks: int, source: str, destination: str) -> None:
        self.counts[Outcome.MOVED.value] += tracks
        self.last(destination, "moved")
        log.info("moved %d track(s): %s -> %s", tracks, source, destination)

    def summary(self) -> str:
        return (
            ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()) if k != Outcome.SKIPPED.value) or "no changes"
        )


class StatusFile:
    """The status at ``path`` and its one line as systemd's ``STATUS=``, refreshed at most once a second."""

    def __init__(self, path: Path, notifier: Notifier) -> None:
        self.path = path
        self.notifier = notifier
        self._written: Status | None = None
        self._time = 0.0
        self._line = ""

    def due(self) -> bool:
        return time.monotonic() - self._time >= STATUS_INTERVAL

    def write(self, data: Status, line: str, force: bool = False) -> None:
        """``force``: now, even if nothing changed (start and stop)."""
        self._time = time.monotonic()
        if line != self._line:
            self._line = line
            self.notifier.status(line)
        if not force and data == self._written:
            return
        self._written = data
        try:
            write_json_atomically(self.path, {**data, "updated": iso(time.time())})
        except OSError as error:
            log.warning("cannot write the status file %s: %s", self.path, error)
