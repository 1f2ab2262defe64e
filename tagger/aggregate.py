"""Window probabilities -> track genres with confidences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tagger.genres import GenreRules, apply_rules
from tagger.model import Head


@dataclass(frozen=True)
class GenreScore:
    label: str  # the model's label
    genre: str  # the text written into files
    confidence: float


@dataclass(frozen=True)
class TrackGenres:
    """A track's genres under one vocabulary."""

    vocabulary: str
    ranked: tuple[GenreScore, ...]  # top-k, most confident first
    chosen: tuple[str, ...]  # genre texts to write (empty: nothing passed its threshold)
    confident: bool  # False: recorded, but below the minimum confidence
    abstained: bool = False  # the head's abstain rule: too uncertain to write anything; ``ranked`` are the candidates
    refused: bool = False  # the genre rules (allow/ignore) refused every genre: ``ranked`` are the model's own

    @property
    def top(self) -> GenreScore:
        return self.ranked[0]


def aggregate(
    window_probabilities: np.ndarray,
    head: Head,
    top_k: int = 1,
    min_confidence: float = 0.0,
    rules: GenreRules | None = None,
) -> TrackGenres:
    """Mean the windows' probabilities and pick the genres.

    Multiclass: the track genre is the argmax of the mean; up to ``top_k`` genres are chosen,
    each needing ``min_confidence``. Multilabel: every label whose mean passes its own threshold
    (and ``min_confidence``), most probable first, at most ``top_k``. A head with ``abstain_below``
    writes nothing when its top score is below it: the track is recorded as uncertain, with its
    ranked candidates, rather than given a likely-wrong genre. ``rules`` rename and drop genres
    before any of this (see :func:`tagger.genres.apply_rules`).
    """
    if window_probabilities.ndim != 2 or len(window_probabilities) == 0:
        raise ValueError("need a (windows, labels) array with at least one window")
    mean = window_probabilities.astype(np.float64).mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    scores = [GenreScore(head.labels[i], head.genre_name(head.labels[i]), float(mean[i])) for i in order]
    k = max(1, top_k)
    if rules is not None and not rules.empty:
        allowed = apply_rules(scores, rules)
        if not allowed:
            return TrackGenres(head.name, tuple(scores[:k]), (), confident=False, refused=True)
        scores = allowed
    ranked = tuple(scores[:k])
    if head.abstain_below is not None and scores[0].confidence < head.abstain_below:
        return TrackGenres(head.name, ranked, (), confident=False, abstained=True)
    if head.task == "multilabel":
        passing = [
            score for score in scores if score.confidence >= max(head.thresholds.get(score.label, 0.5), min_confidence)
        ][:k]
        chosen = tuple(score.genre for score in passing)
        return TrackGenres(head.name, ranked, chosen, confident=bool(chosen), abstained=not chosen)
    chosen = tuple(score.genre for score in ranked if score.confidence >= min_confidence)
    return TrackGenres(head.name, ranked, chosen, confident=ranked[0].confidence >= min_confidence)
