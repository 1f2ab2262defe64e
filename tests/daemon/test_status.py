"""The status file: where it lies for a database URL, written atomically, read back with whether its daemon lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from platformdirs import user_state_dir

from tagger.daemon.status import read_status, status_file_for, status_rows
from tagger.files import write_json_atomically


def test_status_file_lies_beside_a_sqlite_file_and_in_the_state_folder_otherwise(tmp_path: Path) -> None:
    assert status_file_for(f"sqlite:///{tmp_path}/tagger.db") == tmp_path / "tagger.db.status.json"
    assert status_file_for(f"sqlite:///{tmp_path}/tagger.db?timeout=5") == tmp_path / "tagger.db.status.json"
    state = Path(user_state_dir("genre-tagger")) / "status.json"
    assert status_file_for("sqlite:///:memory:") == state
    assert status_file_for("postgresql://tagger:secret@db/tagger") == state


def test_read_status_says_whether_its_daemon_is_alive(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tagger.db.status.json"
    assert read_status(path) is None
    write_json_atomically(path, {"pid": os.getpid(), "state": "watching"})
    assert read_status(path) == {"pid": os.getpid(), "state": "watching", "running": True}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temp file was renamed, none left
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is free now: killed without a chance to say so
    write_json_atomically(path, {"pid": child.pid, "state": "watching"})
    assert read_status(path) == {"pid": child.pid, "state": "dead", "running": False}
    write_json_atomically(path, {"pid": os.getpid(), "state": "stopped"})
    assert read_status(path) == {"pid": os.getpid(), "state": "stopped", "running": False}
    path.write_text("{half a fi")
    assert read_status(path) is None


def test_status_rows_say_missing_roots_a_refused_reload_and_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "tagger.db.status.json"
    data = {
        "pid": 7,
        "state": "watching",
        "roots": ["/srv/a", "/srv/b"],
        "missing_roots": {"/srv/b": "2026-01-01T00:00:00+00:00"},
        "queue": 4,
        "in_progress": 1,
        "config_error": "top_k: expected an integer >= 1, got 0",
        "counts": {"tagged": 2, "failed": 1},
    }
    rows = dict(status_rows(data, path))
    assert rows["state"] == "watching (pid 7)"
    assert rows["roots"] == "/srv/a, /srv/b (missing since 2026-01-01T00:00:00+00:00)"
    assert rows["queue"] == "4 waiting, 1 in progress"
    assert rows["last track"] == "(none yet)"
    assert rows["config"] == "reload refused, previous settings kept: top_k: expected an integer >= 1, got 0"
    assert rows["since start"] == "1 failed, 2 tagged"
    assert rows["status file"] == str(path)
    assert dict(status_rows({}, path))["config"] == "ok"
