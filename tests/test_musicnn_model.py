"""The shipped default model, musicnn: its card loads, every head resolves, and a synthetic file classifies.

Runs under every TFLite runtime (no TensorFlow): the model's int8 front-end and float ops must load in
ai-edge-litert and in tflite-runtime 2.14 alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.aggregate import aggregate
from tagger.model import DEFAULT_MODEL, MODELS_DIR, Classifier, load_card
from tagger.pipeline import analyse_track
from tagger.vocabulary import resolve_vocabulary
from tests.audio_factory import make_track

pytestmark = [
    pytest.mark.model,
    pytest.mark.runtime,
    pytest.mark.skipif(not (MODELS_DIR / "musicnn.json").exists(), reason="musicnn model not shipped"),
]


def test_musicnn_is_the_default_and_its_card_is_complete() -> None:
    assert DEFAULT_MODEL == "musicnn"
    card = load_card()
    assert card.name == "musicnn" and card.model_file.stat().st_size < 4 * 1024 * 1024
    assert {"gtzan", "msd", "genres"} <= set(card.heads) and card.default_head in card.heads
    assert card.features.sample_rate == 16000 and card.features.window_frames == 187 and card.features.n_mels == 96
    assert isinstance(card.max_windows, int) and card.max_windows >= 1
    assert len(card.heads["gtzan"].labels) == 10 and card.heads["gtzan"].task == "multiclass"
    for name in ("msd", "genres"):
        head = card.heads[name]
        assert head.task == "multilabel"
        assert set(head.thresholds) == set(head.labels), name  # every label has its own threshold
        assert all(0.0 < t < 1.0 for t in head.thresholds.values())
        assert set(head.tag_names) == set(head.labels)
    assert card.heads["msd"].genre_name("rnb") == "R&B" and card.heads["msd"].genre_name("Hip-Hop") == "Hip-Hop"
    genres = card.heads["genres"]  # the default: linear over the graph's embedding + taggram, computed in numpy
    assert card.default_head == "genres" and genres.kind == "linear" and genres.inputs == ("embedding", "taggram")
    assert {"Electronic", "Folk", "Punk", "R&B", "Latin", "Hip-Hop", "Metal", "Classical"} <= set(genres.labels)
    assert genres.weights is not None and genres.weights.shape == (250, len(genres.labels))
    assert genres.abstain_below is not None and 0.5 <= genres.abstain_below < 1.0
    assert card.raw["metrics"]["genres"]["protocol"].startswith("artist-grouped")
    assert "ISC" in card.raw["licence"]


def test_a_synthetic_file_classifies_under_every_head(tmp_path: Path) -> None:
    card = load_card("musicnn")
    path = make_track(tmp_path / "track.wav", genre="techno", seconds=20.0, sample_rate=22050)
    analysis = analyse_track(path, Classifier(card, threads=1))
    assert len(analysis.window_starts) == min(card.max_windows or 256, 6)  # 20 s holds 6 windows of 3 s
    assert analysis.embedding is not None and analysis.embedding.shape == (200,)
    for name, head in card.heads.items():
        probabilities = analysis.probabilities[name]
        assert probabilities.shape == (len(analysis.window_starts), len(head.labels))
        assert np.isfinite(probabilities).all() and (probabilities >= 0).all() and (probabilities <= 1.0001).all()
        result = aggregate(probabilities, head, top_k=3)
        assert len(result.ranked) == 3 and all(score.genre for score in result.ranked)
    np.testing.assert_allclose(analysis.probabilities["gtzan"].sum(axis=1), 1.0, atol=0.02)
    vocabulary = resolve_vocabulary(card, None, "sqlite:///:memory:")
    assert vocabulary.name == card.default_head
