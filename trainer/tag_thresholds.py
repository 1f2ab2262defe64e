"""Per-label thresholds for multilabel vocabularies, chosen on labelled clips by F1.

A multilabel vocabulary writes every label whose track score (mean of its windows) passes the
label's own threshold. For a label that names a GTZAN genre (an MSD tag mapped to one, or a
GTZAN genre taken from the head) the threshold maximises the F1 of "label written" against "the
clip is of that genre" on the sample. Labels no genre maps to get no evidence from GTZAN and a
conservative default instead (see :func:`unmapped_default`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Threshold:
    """A chosen cut-off and its F1 / precision / recall on the clips it was chosen on."""

    value: float
    f1: float
    precision: float
    recall: float
    positives: int


def prf(scores: np.ndarray, positive: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``scores >= threshold`` against ``positive``."""
    predicted = scores >= threshold
    hits = float(np.sum(predicted & positive))
    precision = hits / max(float(predicted.sum()), 1.0)
    recall = hits / max(float(positive.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray, floor: float = 0.0) -> Threshold:
    """The cut-off maximising F1, placed halfway between two neighbouring scores (never at a clip's score).

    Among equally good cut-offs the median one is taken, so one clip moving a little does not move
    the threshold to the edge of a gap. ``floor`` bounds it from below (int8 resolution).
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    candidates = np.unique(np.maximum(candidates, floor))
    f1s = np.array([prf(scores, positive, c)[2] for c in candidates])
    best = candidates[np.flatnonzero(np.isclose(f1s, f1s.max()))]
    value = float(best[len(best) // 2])
    precision, recall, f1 = prf(scores, positive, value)
    return Threshold(value, f1, precision, recall, int(positive.sum()))


def cross_validated_f1(
    scores: np.ndarray, positive: np.ndarray, splits: Iterable[tuple[Sequence[int], Sequence[int]]], floor: float = 0.0
) -> dict[str, float]:
    """F1 / precision / recall of thresholds chosen on each split's train clips, pooled over its test clips."""
    hits = predicted = actual = 0
    for train, test in splits:
        train_idx, test_idx = np.asarray(train), np.asarray(test)
        if not positive[train_idx].any():
            continue
        chosen = best_f1_threshold(scores[train_idx], positive[train_idx], floor).value
        written = scores[test_idx] >= chosen
        hits += int(np.sum(written & positive[test_idx]))
        predicted += int(written.sum())
        actual += int(positive[test_idx].sum())
    precision = hits / max(predicted, 1)
    recall = hits / max(actual, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "tested_positives": actual}


def unmapped_default(mapped: Sequence[float], scores: np.ndarray) -> float:
    """Threshold for a label with no GTZAN evidence: the largest mapped threshold, at least 0.5 × its own top score.

    Requiring as much as the most demanding mapped tag keeps an unverified label from being written
    more readily than any label we could check; the 0.5 × (highest track score seen on the sample)
    floor keeps a tag that scores high on everything (a broad one such as ``alternative``) from
    being written on most tracks.
    """
    return float(max(max(mapped), 0.5 * float(np.max(scores))))
