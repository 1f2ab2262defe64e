"""`tagger classify`'s result object, from a real synthetic track and the tiny model: nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.classify import classify_file
from tagger.config import Settings
from tagger.moods import axes
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.mood_card import GENRE_MOODS, MOOD_HEAD, QUADRANT_NAMES, mood_card_path

pytestmark = [pytest.mark.model, pytest.mark.runtime]


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


@pytest.mark.parametrize("with_moods", [False, True], ids=["genres", "genres-and-moods"])
def test_classify_with_the_models_own_vocabulary_starts_without_the_database_code(
    tmp_path: Path, with_moods: bool
) -> None:
    track = make_track(tmp_path / "organ.wav", "organ", seconds=4.0)
    heavy = ("sqlalchemy", "alembic", "sklearn", "watchdog")
    card = mood_card_path(tmp_path / "model") if with_moods else TINY_CARD
    run = (
        f"import atexit, sys; atexit.register(lambda: print([m for m in {heavy!r} if m in sys.modules])); "
        f"sys.argv = ['tagger', 'classify', {str(track)!r}, '--model', {str(card)!r}]; "
        "from tagger.cli import main; main()"
    )
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "tagger.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "would write: organ" in done.stdout
    assert ("would write mood: Relaxed" in done.stdout) is with_moods
    assert done.stdout.splitlines()[-1] == "[]"


def tagger(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "tagger.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    return subprocess.run(
        [sys.executable, "-m", "tagger.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_classification_carries_the_moods_of_the_same_pass(tmp_path: Path) -> None:
    card = mood_card_path(tmp_path / "model")
    track = make_track(tmp_path / "drone.wav", "drone", seconds=6.0)
    result = classify_file(track, Settings(model=str(card), db=str(tmp_path / "tagger.db")), top_k=3)
    moods = result.moods
    assert moods is not None
    # The same analysis as the genres: the mood head's rows are there beside the genre head's, nothing decoded again.
    mean = result.analysis.probabilities[MOOD_HEAD].mean(axis=0)
    assert moods.record["scores"] == pytest.approx(dict(zip(QUADRANT_NAMES, mean.tolist(), strict=True)), abs=1e-6)
    assert moods.decision.top.genre == GENRE_MOODS["drone"] == "Sad" and moods.ranked[0] == moods.decision.top
    assert [s.genre for s in moods.ranked][1:] == ["Happy", "Aggressive", "Relaxed"]  # every label, ranked
    assert moods.decision.chosen == ("Sad",) and not moods.uncertain
    assert moods.axes == axes(moods.record["scores"]) and moods.axes is not None
    assert moods.axes.valence < -0.8 and moods.axes.arousal < -0.8  # Q3: negative and calm
    data = result.to_dict()["moods"]
    assert data["chosen"] == ["Sad"] and data["abstained"] is False and data["confident"] is True
    assert data["ranked"][0] == {"label": "Q3", "mood": "Sad", "confidence": pytest.approx(float(mean[2]), abs=1e-4)}
    assert set(data["scores"]) == set(QUADRANT_NAMES) and data["valence"] == pytest.approx(moods.axes.valence, abs=1e-4)
    without = classify_file(track, Settings(model=str(card), db=str(tmp_path / "tagger.db")), 3, moods=False)
    assert without.moods is None and without.to_dict()["moods"] is None
    assert classify_file(track, Settings(model=str(card), moods=False), 3).moods is None  # config moods = false
    assert classify_file(track, Settings(model=str(TINY_CARD)), 3).moods is None  # a model without a mood head


def test_classify_prints_the_moods_or_uncertain_and_no_moods_hides_them(tmp_path: Path) -> None:
    track = make_track(tmp_path / "techno.flac", "techno", seconds=5.0)
    card = mood_card_path(tmp_path / "sure")
    shown = tagger("classify", str(track), "--model", str(card), tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "would write mood: Aggressive" in lines
    valence, arousal = (float(x.split()[-1]) for x in next(ln for ln in lines if ln.startswith("valence")).split(","))
    assert valence < -0.8 and arousal > 0.8  # Q2: negative and energetic
    data = json.loads(tagger("classify", str(track), "--model", str(card), "--json", tmp_path=tmp_path).stdout)
    assert data["moods"]["chosen"] == ["Aggressive"] and data["moods"]["ranked"][0]["mood"] == "Aggressive"
    assert (round(valence, 2), round(arousal, 2)) == (
        round(data["moods"]["valence"], 2),
        round(data["moods"]["arousal"], 2),
    )

    unsure = mood_card_path(tmp_path / "unsure", abstain_below=0.99)  # the top score is 0.948
    abstained = tagger("classify", str(track), "--model", str(unsure), tmp_path=tmp_path)
    assert abstained.returncode == 0, abstained.stderr
    assert "would write mood: (nothing: uncertain, the head abstains; top Aggressive 0.95)" in abstained.stdout
    data = json.loads(tagger("classify", str(track), "--model", str(unsure), "--json", tmp_path=tmp_path).stdout)
    assert data["moods"]["chosen"] == [] and data["moods"]["abstained"] is True
    assert data["moods"]["ranked"][0]["mood"] == "Aggressive"  # the candidates are still ranked

    hidden = tagger("classify", str(track), "--model", str(card), "--no-moods", tmp_path=tmp_path)
    assert hidden.returncode == 0 and "would write: techno" in hidden.stdout
    assert "mood" not in hidden.stdout and "valence" not in hidden.stdout
    data = json.loads(
        tagger("classify", str(track), "--model", str(card), "--no-moods", "--json", tmp_path=tmp_path).stdout
    )
    assert data["moods"] is None
