"""Our JSON files (the daemon's status, a learned vocabulary's card) are written one way: whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagger.files import write_json_atomically


def test_json_is_replaced_whole_and_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "new folder" / "status.json"
    write_json_atomically(path, {"state": "idle"})
    assert json.loads(path.read_text()) == {"state": "idle"}  # the folder is made
    write_json_atomically(path, {"state": "working", "queued": 3}, indent=1)
    assert json.loads(path.read_text()) == {"state": "working", "queued": 3}
    with pytest.raises(TypeError):
        write_json_atomically(path, {("not", "a", "key"): 1})  # JSON keys are strings
    assert json.loads(path.read_text()) == {"state": "working", "queued": 3}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temp file left beside it
