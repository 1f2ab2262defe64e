"""`tagger classify`'s result object, from a real synthetic track and the tiny model: nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.classify import classify_file
from tagger.config import Settings
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model]


def test_classification_ranks_top_k_and_chooses_what_scan_would_write(tmp_path: Path) -> None:
    track = make_track(tmp_path / "organ.wav", "organ", seconds=6.0)
    before = track.read_bytes()
    settings = Settings(model=str(TINY_CARD), db=str(tmp_path / "tagger.db"), top_k=1, max_windows=3)
    result = classify_file(track, settings, top_k=3)
    assert len(result.ranked) == 3
    assert [s.confidence for s in result.ranked] == sorted((s.confidence for s in result.ranked), reverse=True)
    assert result.chosen == (result.ranked[0].genre,)  # scan's top_k of 1, not classify's 3
    assert len(result.timeline) == len(result.analysis.window_starts) == 3
    data = result.to_dict()
    assert data["path"] == str(track.resolve()) and data["model"] == result.card.model_id
    assert [w["start"] for w in data["windows"]] == [round(s, 2) for s in result.analysis.window_starts]
    assert [g["genre"] for g in data["genres"]] == [s.genre for s in result.ranked]
    assert track.read_bytes() == before and not (tmp_path / "tagger.db").exists()


def test_classify_with_the_models_own_vocabulary_starts_without_the_database_code(tmp_path: Path) -> None:
    track = make_track(tmp_path / "organ.wav", "organ", seconds=4.0)
    heavy = ("sqlalchemy", "alembic", "sklearn", "watchdog")
    run = (
        f"import atexit, sys; atexit.register(lambda: print([m for m in {heavy!r} if m in sys.modules])); "
        f"sys.argv = ['tagger', 'classify', {str(track)!r}, '--model', {str(TINY_CARD)!r}]; "
        "from tagger.cli import main; main()"
    )
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "tagger.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "would write: organ" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"
