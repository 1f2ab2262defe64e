"""The trainer's one F1 cut-off rule (no TensorFlow)."""

from __future__ import annotations

import numpy as np

from tagger.train.thresholds import best_f1_threshold, cross_validated_f1


def test_f1_thresholds() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    positive = np.array([False, False, False, True, True, True])
    chosen = best_f1_threshold(scores, positive)
    assert 0.3 < chosen.value < 0.6 and chosen.f1 == 1.0 and chosen.positives == 3
    assert best_f1_threshold(scores, positive, floor=0.65).value >= 0.65
    splits = [([0, 1, 3, 4], [2, 5]), ([1, 2, 4, 5], [0, 3])]
    assert cross_validated_f1(scores, positive, splits)["f1"] == 1.0


def test_max_written_caps_how_many_clips_get_the_label() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.array([True, False, True, True])
    assert best_f1_threshold(scores, positive).value < 0.6  # uncapped: write all four (F1 0.86)
    capped = best_f1_threshold(scores, positive, max_written=1)
    assert 0.8 < capped.value < 0.9 and (scores >= capped.value).sum() == 1 and capped.f1 == 0.5
