"""Track-level scores: the vote, scores from a confusion matrix, macro precision (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.train.evaluate import from_confusion, score, summarise


def test_track_vote_is_the_mean_of_window_probabilities() -> None:
    from tagger.train.windows import WindowSet

    # Track 0 (true 0): windows say 1 weakly, then 0 strongly -> mean picks 0. Track 1 (true 1): picks 1.
    probabilities = np.array([[0.4, 0.6], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    data = WindowSet(np.zeros((3, 1, 1), np.float32), np.array([0, 0, 1]), np.array([0, 0, 1]))
    scores = score(probabilities, data, ("a", "b"))
    assert scores.track_accuracy == 1.0
    assert scores.window_accuracy == pytest.approx(2 / 3)
    assert scores.confusion == [[1, 0], [0, 1]]
    assert scores.macro["f1"] == 1.0

    summary = summarise([scores, scores], ("a", "b"))
    assert summary["macro"]["f1"] == {"mean": 1.0, "std": 0.0}
    assert summary["confusion"] == [[2, 0], [0, 2]]


def test_scores_from_confusion() -> None:
    per_genre, macro = from_confusion(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]), ("a", "b", "c"))
    assert set(per_genre) == {"a", "b"}  # neither true nor predicted: no row
    assert per_genre["a"]["precision"] == 1.0 and per_genre["a"]["recall"] == 0.75
    assert per_genre["b"]["precision"] == pytest.approx(2 / 3)
    assert macro["recall"] == pytest.approx((0.75 + 1.0) / 2)


def test_predicting_an_absent_genre_costs_macro_precision() -> None:
    from tagger.train.windows import WindowSet

    # Two tracks of genre a; one is called c, which has no test track.
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], dtype=np.float32)
    data = WindowSet(np.zeros((2, 1, 1), np.float32), np.array([0, 0]), np.array([0, 1]))
    scores = score(probabilities, data, ("a", "b", "c"))
    assert scores.macro["precision"] == pytest.approx((1.0 + 0.0) / 2)  # a and c; b neither true nor predicted
    assert scores.macro["recall"] == pytest.approx((0.5 + 0.0) / 2)
    per_genre, macro = from_confusion(np.array(scores.confusion), ("a", "b", "c"))
    assert set(per_genre) == {"a", "c"} and macro == pytest.approx(scores.macro)
