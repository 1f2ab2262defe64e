"""`tagger classify FILE`: one track's genres with confidences and its window timeline, and its moods where the
model has a mood head; nothing is written.

Imports the analysis rooms only (no database, no scikit-learn): the command must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.aggregate import GenreScore, TrackGenres, aggregate
from tagger.config import Settings, database_url
from tagger.genres import GenreRules
from tagger.model import Classifier, ModelCard, load_card
from tagger.moods import Axes, axes, mood_record
from tagger.pipeline import TrackAnalysis, analyse_track
from tagger.vocabulary import Vocabulary, available, resolve_mood_vocabulary, resolve_vocabulary
from tagger.walk import canonical_path


@dataclass(frozen=True)
class Window:
    """One window of the timeline and the genre the model heard most in it."""

    start: float  # seconds
    genre: str
    confidence: float


@dataclass(frozen=True)
class TrackMoods:
    """What the mood head (or a learned mood vocabulary) hears in the track: computed in the same pass as the
    genres, from outputs the graph already has, and decided as a scan decides it."""

    vocabulary: Vocabulary
    decision: TrackGenres  # what a scan would write (``chosen``; empty: uncertain) by the head's abstain rule
    ranked: tuple[GenreScore, ...]  # every label, most confident first
    record: dict[str, Any]  # the decision as ``results.moods`` keeps it (:func:`tagger.moods.mood_record`)

    @property
    def uncertain(self) -> bool:
        """The head abstained: no mood would be written."""
        return not self.decision.chosen

    @property
    def axes(self) -> Axes | None:
        """Valence and arousal; None unless the labels are the four quadrants."""
        return axes(self.record["scores"])


def track_moods(vocabulary: Vocabulary, analysis: TrackAnalysis) -> TrackMoods:
    """The track's moods from its analysis (nothing decoded again), decided as :mod:`tagger.record` does."""
    head = vocabulary.head
    rows = vocabulary.window_probabilities(analysis)
    decision = aggregate(rows, head, 1)  # one mood per track, the head's own abstain rule
    ranked = aggregate(rows, head, len(head.labels)).ranked
    return TrackMoods(vocabulary, decision, ranked, mood_record(decision, rows, head))


@dataclass
class Classification:
    """What the model hears in one track under one vocabulary."""

    file: Path  # as given
    card: ModelCard
    vocabulary: Vocabulary
    analysis: TrackAnalysis
    windows: np.ndarray  # (windows, labels) under the vocabulary; one row for a learned one
    ranked: tuple[GenreScore, ...]  # the top_k asked for, most confident first
    chosen: tuple[str, ...]  # what `tagger scan` would write (its top_k, min_confidence and genre rules)
    rules: GenreRules
    database_url: str  # where learned vocabularies are looked up
    moods: TrackMoods | None = None  # None: the model has no mood head, or moods are off

    @property
    def timeline(self) -> list[Window]:
        """Per window; none for a learned vocabulary (it hears the track as one)."""
        if not self.vocabulary.needs_audio:
            return []
        head = self.vocabulary.head
        return [
            Window(start, head.genre_name(head.labels[int(p.argmax())]), float(p.max()))
            for start, p in zip(self.analysis.window_starts, self.windows, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(canonical_path(self.file)),
            "model": self.card.model_id,
            "vocabulary": self.vocabulary.head.name,
            "duration": self.analysis.duration,
            "genres": [{"genre": s.genre, "label": s.label, "confidence": round(s.confidence, 4)} for s in self.ranked],
            "chosen": list(self.chosen),
            "vocabularies": available(self.card, self.database_url),
            "windows": [
                {"start": round(w.start, 2), "genre": w.genre, "confidence": round(w.confidence, 4)}
                for w in self.timeline
            ],
            "moods": None if self.moods is None else self.moods.record,
        }

    def plot(self, path: Path) -> None:
        """Draw the window timeline into the PNG ``path`` (raises :class:`tagger.plot.PlotError`)."""
        from tagger.features import window_samples
        from tagger.plot import plot_timeline

        head, features = self.vocabulary.head, self.card.features
        plot_timeline(
            self.analysis.window_starts if self.vocabulary.needs_audio else [],
            self.windows,
            [self.rules.canonical(head.genre_name(label)) for label in head.labels],
            path,
            title=f"{self.file.name} ({self.card.model_id}/{head.name})",
            window_seconds=window_samples(features) / features.sample_rate,
        )


def classify_file(file: Path, settings: Settings, top_k: int, moods: bool = True) -> Classification:
    """Classify ``file`` with the settings' model and vocabulary; ``top_k`` genres are ranked, and the moods
    (the settings' ``mood_vocabulary``, else the card's mood head) too unless ``moods`` or the settings'
    ``moods`` is False (or the model has none). Raises :class:`tagger.errors.TaggerError` (or
    :class:`ValueError`) with one line."""
    card = load_card(settings.model)
    url = database_url(settings.db)
    vocabulary = resolve_vocabulary(card, settings.vocabulary, url)
    wanted = moods and settings.moods
    mood_vocabulary = resolve_mood_vocabulary(card, settings.mood_vocabulary, url) if wanted else None
    analysis = analyse_track(file, Classifier(card, threads=settings.threads), settings.max_windows)
    head = vocabulary.head
    windows = vocabulary.window_probabilities(analysis)
    ranked = aggregate(windows, head, top_k, settings.min_confidence, settings.genres).ranked
    chosen = aggregate(windows, head, settings.top_k, settings.min_confidence, settings.genres).chosen
    found = None if mood_vocabulary is None else track_moods(mood_vocabulary, analysis)
    return Classification(file, card, vocabulary, analysis, windows, ranked, chosen, settings.genres, url, found)
