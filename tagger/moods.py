"""Moods: the four quadrants of Russell's valence-arousal plane, and the two axes derived from them.

A mood head (role ``mood``, see :class:`tagger.model.Head`) scores the quadrants of the 4Q data set
(Panda, Malheiro & Paiva 2018): Q1 positive and energetic, Q2 negative and energetic, Q3 negative and
calm, Q4 positive and calm. Its labels are the quadrant names; the words written into files are the
card's ``tag_names`` (e.g. Happy, Aggressive, Sad, Relaxed). The axes are one rule, used by the
runtime and the trainer alike: each is the score mass on its positive side minus the mass on its
negative side, in [-1, 1]. A track's mood decision as ``results.moods`` keeps it (and ``tagger classify
--json`` prints it) is :func:`mood_record`, read back by :func:`stored_mood_rows`: no database code here, so
``classify`` starts without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tagger.aggregate import TrackGenres
    from tagger.model import Head

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
_VALENCE_SIGN = {"Q1": 1.0, "Q2": -1.0, "Q3": -1.0, "Q4": 1.0}
_AROUSAL_SIGN = {"Q1": 1.0, "Q2": 1.0, "Q3": -1.0, "Q4": -1.0}


@dataclass(frozen=True)
class Axes:
    valence: float  # -1 negative .. +1 positive
    arousal: float  # -1 calm .. +1 energetic


def axes(scores: Mapping[str, float]) -> Axes | None:
    """The axes from a track's mean quadrant scores (label -> score); None unless every quadrant is scored."""
    if not all(quadrant in scores for quadrant in QUADRANTS):
        return None
    total = sum(float(scores[q]) for q in QUADRANTS) or 1.0
    return Axes(
        valence=sum(_VALENCE_SIGN[q] * float(scores[q]) for q in QUADRANTS) / total,
        arousal=sum(_AROUSAL_SIGN[q] * float(scores[q]) for q in QUADRANTS) / total,
    )


def mood_record(decision: TrackGenres, rows: np.ndarray, head: Head) -> dict[str, Any]:
    """``results.moods``: the decision, with every label's mean score (what a re-decision starts from) and, for
    the four quadrants, the valence and arousal axes."""
    mean = rows.astype(np.float64).mean(axis=0)
    scores = {label: round(float(score), 6) for label, score in zip(head.labels, mean, strict=True)}
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    record: dict[str, Any] = {
        "vocabulary": decision.vocabulary,
        "scores": scores,
        "ranked": [
            {"label": label, "mood": head.genre_name(label), "confidence": round(score, 4)} for label, score in ranked
        ],
        "chosen": list(decision.chosen),
        "confident": decision.confident,
        "abstained": decision.abstained,
    }
    if (found := axes(dict(zip(head.labels, mean.tolist(), strict=True)))) is not None:
        record["valence"], record["arousal"] = round(found.valence, 4), round(found.arousal, 4)
    return record


def stored_mood_rows(record: Mapping[str, Any] | None, head: Head) -> np.ndarray | None:
    """The one-row scores a stored mood decision of ``head`` was made from; None if it holds no such scores."""
    scores = (record or {}).get("scores")
    if (record or {}).get("vocabulary") != head.name or not isinstance(scores, dict):
        return None
    if not all(isinstance(scores.get(label), int | float) for label in head.labels):
        return None
    return np.asarray([[float(scores[label]) for label in head.labels]], dtype=np.float64)
