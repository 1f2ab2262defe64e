"""The status file: where it lies for a database URL, written atomically, read back with whether its daemon lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from platformdirs import user_state_dir

from tagger.daemon.status import read_status, status_file_for
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
