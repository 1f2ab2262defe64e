"""Per-label thresholds for multilabel vocabularies, chosen on labelled clips by F1: the trainer's one rule.

A multilabel vocabulary writes every label whose track score (mean of its windows) passes the
label's own threshold. For a label that names a GTZAN genre (an MSD tag mapped to one, or a
GTZAN genre taken from the head) the threshold maximises the F1 of "label written" against "the
clip is of that genre" on the sample. Labels no genre maps to get no evidence from GTZAN and a
conservative default instead (:data:`UNMAPPED_THRESHOLD`).
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


def best_f1_threshold(
    scores: np.ndarray, positive: np.ndarray, floor: float = 0.0, max_written: float | None = None
) -> Threshold:
    """The cut-off maximising F1, placed halfway between two neighbouring scores (never at a clip's score).

    Among equally good cut-offs the median one is taken, so one clip moving a little does not move
    the threshold to the edge of a gap. ``floor`` bounds it from below (int8 resolution); with
    ``max_written``, only cut-offs writing the label on at most that many clips are candidates.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    candidates = np.unique(np.maximum(candidates, floor))
    if max_written is not None:  # the top candidate writes nothing, so one always remains
        candidates = candidates[[int(np.sum(scores >= c)) <= max_written for c in candidates]]
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


UNMAPPED_THRESHOLD = 0.5
"""Raw threshold of a tag with no GTZAN evidence: MSD_musicnn's sigmoid says "more likely than not". It is
above every trusted mapped tag's F1-optimal cut-off but jazz's on the sample (those run 0.05-0.3: the
last.fm tags are sparse, so the network's scores run low), so an unverified tag is written less readily
than any tag we could check, yet still when the network is sure."""

MIN_TRUSTED_F1 = 0.5
"""A mapped tag whose best F1 on the sample is below this (``classic rock`` against GTZAN rock: ~0.13, its
best cut-off tags everything) carries no usable evidence and is treated as unmapped."""
