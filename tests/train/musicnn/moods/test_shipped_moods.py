"""The mood head as shipped in the musicnn card, and its parity with the trainer on real clips (when the data set
is here: ``$TAGGER_DATASETS`` or ``../shared/datasets`` beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tagger.model import MODELS_DIR, card_path_for, load_card
from tagger.moods import QUADRANTS
from tagger.train.musicnn.genres.run import GenreOptions, outputs_for
from tagger.train.musicnn.moods.cv import build_data, clip_scores
from tagger.train.musicnn.moods.labels import TAG_NAMES, mood_clips
from tagger.train.musicnn.moods.run import parity

ROOT = Path(__file__).resolve().parents[4]
DATA = Path(os.environ.get("TAGGER_DATASETS", ROOT.parent / "shared" / "datasets")) / "allmusic-4q"
pytestmark = pytest.mark.skipif(not (MODELS_DIR / "musicnn.json").exists(), reason="musicnn model not shipped")


def test_the_shipped_card_carries_the_mood_head_and_its_figures() -> None:
    card = load_card("musicnn")
    assert card.mood_head == "moods" and card.default_head == "genres"
    head = card.heads["moods"]
    assert (head.kind, head.task, head.role, head.activation) == ("linear", "multiclass", "mood", "softmax")
    assert head.labels == QUADRANTS and head.tag_names == TAG_NAMES and head.inputs == ("embedding", "taggram")
    assert head.weights is not None and head.weights.shape == (250, 4)
    assert head.abstain_below is not None and 0.25 < head.abstain_below < 1.0
    metrics = card.raw["metrics"]["moods"]
    assert metrics["data"]["clips"] == 659 and 0.5 < metrics["cv"]["macro_f1"]["mean"] < 1.0
    assert metrics["shipped_head"]["abstain_below"] == head.abstain_below
    assert set(metrics["names"]["allmusic_words"]) == set(QUADRANTS)


@pytest.mark.skipif(not (DATA / "metadata.csv").exists(), reason="allmusic-4q data set not here")
def test_the_runtime_scores_real_clips_with_the_shipped_card_as_the_trainer_did(tmp_path: Path) -> None:
    card = load_card("musicnn")
    recorded = card.raw["metrics"]["moods"]["parity"]
    names = recorded["clips"][:2]
    by_name = {c.clip.path.name: c for c in mood_clips(DATA)}
    clips = [by_name[name] for name in names]
    # The trainer's path, from scratch: its own outputs of these clips (a fresh cache), the card's head over them.
    options = GenreOptions(allmusic=DATA, gtzan=DATA, out=tmp_path, cache_dir=tmp_path / "cache")
    data = build_data(clips, outputs_for([c.clip for c in clips], options, ("spread",)))
    trainer = clip_scores(card.heads["moods"], data, np.arange(len(clips)))
    np.testing.assert_allclose(trainer, recorded["trainer_scores"][:2], atol=1e-4)
    # The runtime's path: decode, windows, graph and head in analyse_track, then aggregate.
    result = parity(card.raw, card_path_for("musicnn"), data, range(len(clips)))
    assert result["same_window_count"] == len(clips) and result["max_abs_difference"] < 1e-5
    np.testing.assert_allclose(result["runtime_scores"], trainer, atol=1e-4)
