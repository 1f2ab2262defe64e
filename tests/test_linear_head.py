"""A "linear over outputs" head (computed in numpy from the graph's own outputs) and the abstain rule,
on the real fixture model, real audio files and a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tagger.aggregate import aggregate
from tagger.errors import ModelError
from tagger.model import Classifier, Head, ModelCard
from tagger.pipeline import analyse_track
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model, pytest.mark.runtime]

LABELS = ["Calm", "Busy", "Other"]


def linear_card(tmp_path: Path, weights: np.ndarray, bias: np.ndarray, **head: Any) -> ModelCard:
    """The tiny fixture card plus a linear head over its embedding output, as the default head."""
    data = json.loads(TINY_CARD.read_text())
    data["model_file"] = str((TINY_CARD.parent / data["model_file"]).resolve())
    data["heads"]["mine"] = {
        "kind": "linear",
        "labels": LABELS,
        "task": "multilabel",
        "inputs": ["embedding"],
        "weights": weights.tolist(),
        "bias": bias.tolist(),
        "thresholds": {label: 0.5 for label in LABELS},
    } | head
    data["default_head"] = "mine"
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    return ModelCard.load(path)


def embedding_size(tiny_card: ModelCard, tmp_path: Path) -> int:
    path = make_track(tmp_path / "probe.wav", genre="drone", seconds=4.0)
    analysis = analyse_track(path, Classifier(tiny_card, threads=1))
    assert analysis.embedding is not None
    return int(analysis.embedding.shape[0])


def test_linear_head_is_sigmoid_of_the_window_embeddings(tiny_card: ModelCard, tmp_path: Path) -> None:
    size = embedding_size(tiny_card, tmp_path)
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(size, 3)).astype(np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    card = linear_card(tmp_path, weights, bias)
    classifier = Classifier(card, threads=1)
    path = make_track(tmp_path / "track.wav", genre="techno", seconds=9.0)
    windows = np.stack([w for w in _windows(card, path)])
    prediction = classifier.predict(windows)
    assert prediction.embeddings is not None and len(prediction.embeddings) == len(windows) >= 2
    expected = 1 / (1 + np.exp(-(prediction.embeddings @ weights + bias)))
    np.testing.assert_allclose(prediction.probabilities["mine"], expected, rtol=1e-5, atol=1e-6)
    # The model's own head is still read from its output tensor, beside the linear one.
    assert prediction.probabilities["synthetic"].shape == (len(windows), 5)


def test_a_softmax_head_scores_sum_to_one(tiny_card: ModelCard, tmp_path: Path) -> None:
    size = embedding_size(tiny_card, tmp_path)
    rng = np.random.default_rng(1)
    weights, bias = rng.normal(size=(size, 3)).astype(np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    card = linear_card(tmp_path, weights, bias, task="multiclass", activation="softmax")
    path = make_track(tmp_path / "track.wav", genre="techno", seconds=9.0)
    prediction = Classifier(card, threads=1).predict(np.stack(_windows(card, path)))
    assert prediction.embeddings is not None
    logits = prediction.embeddings.astype(np.float64) @ weights + bias
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prediction.probabilities["mine"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(prediction.probabilities["mine"].sum(axis=1), 1.0, atol=1e-5)


def test_a_mood_head_is_never_a_genre_vocabulary(tmp_path: Path) -> None:
    from tagger.vocabulary import available, resolve_mood_vocabulary, resolve_vocabulary

    with pytest.raises(ModelError, match="is not a genre head"):
        linear_card(tmp_path, np.zeros((8, 3)), np.zeros(3), role="mood")
    data = json.loads(TINY_CARD.read_text())
    data["model_file"] = str((TINY_CARD.parent / data["model_file"]).resolve())
    mood = {"kind": "linear", "labels": LABELS, "inputs": ["embedding"], "role": "mood", "activation": "softmax"}
    data["heads"]["feel"] = mood | {"weights": np.zeros((8, 3)).tolist(), "bias": [0.0] * 3}
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data | {"mood_head": "synthetic"}))
    with pytest.raises(ModelError, match="mood_head 'synthetic' is not among its mood heads"):
        ModelCard.load(path)
    path.write_text(json.dumps(data | {"mood_head": "feel"}))
    card = ModelCard.load(path)
    assert card.mood_head == "feel" and card.heads["feel"].activation == "softmax"
    assert Head.from_dict("feel", card.heads["feel"].to_dict()).role == "mood"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert "feel" not in available(card, url) and "synthetic" in available(card, url)
    with pytest.raises(ValueError, match="mood head, not a genre vocabulary"):
        resolve_vocabulary(card, "feel", url)
    mood = resolve_mood_vocabulary(card, None, url)
    assert mood is not None and mood.head.name == "feel"
    assert resolve_mood_vocabulary(linear_card(tmp_path, np.zeros((8, 3)), np.zeros(3)), None, url) is None
    with pytest.raises(ValueError, match="no mood vocabulary 'synthetic'"):
        resolve_mood_vocabulary(card, "synthetic", url)
    with pytest.raises(ModelError, match="activation 'softmax'"):
        linear_card(tmp_path, np.zeros((8, 3)), np.zeros(3), kind="output", output="x", activation="softmax")


def _windows(card: ModelCard, path: Path) -> list[np.ndarray]:
    from tagger import audio, features

    info = audio.probe(path)
    params = card.features
    starts = features.window_starts(info.samples_at(params.sample_rate), params, None)
    length = features.window_samples(params)
    segments = audio.read_segments(path, params.sample_rate, starts, length, info)
    return [features.window_from_segment(s, params) for s in segments]


def test_a_linear_head_whose_weights_do_not_fit_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="do not fit its labels"):
        linear_card(tmp_path, np.zeros((8, 2)), np.zeros(3))
    with pytest.raises(ModelError, match="names no 'taggram' output"):
        linear_card(tmp_path, np.zeros((8, 3)), np.zeros(3), inputs=["taggram"])


def test_card_round_trip_keeps_the_linear_head(tmp_path: Path) -> None:
    card = linear_card(tmp_path, np.eye(4, 3), np.array([1.0, 2.0, 3.0]), abstain_below=0.7)
    head = card.heads["mine"]
    again = Head.from_dict("mine", json.loads(json.dumps(head.to_dict())))
    assert again.kind == "linear" and again.inputs == ("embedding",) and again.abstain_below == 0.7
    assert again.weights is not None and again.bias is not None
    np.testing.assert_array_equal(again.weights, np.eye(4, 3))
    np.testing.assert_array_equal(again.bias, [1.0, 2.0, 3.0])


def abstaining_head(abstain_below: float | None) -> Head:
    return Head(
        name="genres", labels=("Rock", "Pop", "Jazz"), task="multilabel",
        thresholds={"Rock": 0.5, "Pop": 0.5, "Jazz": 0.5}, abstain_below=abstain_below,
    )  # fmt: skip


def test_abstain_rule_on_the_top_score() -> None:
    windows = np.array([[0.70, 0.55, 0.1], [0.60, 0.65, 0.1]])  # means: Rock 0.65, Pop 0.60
    sure = aggregate(windows, abstaining_head(0.6), top_k=2)
    assert sure.chosen == ("Rock", "Pop") and sure.confident and not sure.abstained
    unsure = aggregate(windows, abstaining_head(0.7), top_k=2)
    assert unsure.chosen == () and not unsure.confident and unsure.abstained
    assert [s.genre for s in unsure.ranked] == ["Rock", "Pop"]  # the candidates are kept, ranked
    nothing_passes = aggregate(windows * 0.5, abstaining_head(None))
    assert nothing_passes.chosen == () and nothing_passes.abstained


def scan_one(card: ModelCard, path: Path, database: Database) -> Any:
    library = Library(database, card, TagOptions())
    with Scanner(library, isolate=False) as scanner:
        return next(iter(scanner.scan([path.parent])))


@pytest.mark.ffmpeg
def test_an_abstaining_track_is_recorded_uncertain_and_its_file_left_alone(
    tiny_card: ModelCard, tmp_path: Path
) -> None:
    size = embedding_size(tiny_card, tmp_path)
    weights = np.zeros((size, 3), np.float32)
    music = tmp_path / "music"
    music.mkdir()
    path = make_track(music / "a.flac", genre="chimes", seconds=6.0)
    # Scores are exactly sigmoid(bias): Calm 0.62, Busy 0.55, Other 0.27; all past 0.5 but Other.
    bias = np.log(np.array([0.62, 0.55, 0.27]) / (1 - np.array([0.62, 0.55, 0.27]))).astype(np.float32)

    (tmp_path / "u").mkdir()
    unsure = linear_card(tmp_path / "u", weights, bias, abstain_below=0.7)
    report = scan_one(unsure, path, Database(tmp_path / "u.db"))
    assert report.outcome is Outcome.LOW_CONFIDENCE
    assert report.reason == "uncertain: Calm 0.62"
    assert open_tags(path).read_genres() == []

    (tmp_path / "s").mkdir()
    sure = linear_card(tmp_path / "s", weights, bias, abstain_below=0.6)
    report = scan_one(sure, path, Database(tmp_path / "s.db"))
    assert report.outcome is Outcome.TAGGED, report
    assert open_tags(path).read_genres() == ["Calm"]
