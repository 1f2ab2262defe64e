"""Vocabularies: the genre lists a track can be tagged in.

A model's own heads (``gtzan``, ``msd``, ...) read the per-window probabilities the network
outputs. A *learned* vocabulary (``tagger learn``) is a head over the track embedding the
model also outputs, so applying it to a scanned track needs no decoding at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from tagger.model import Head, ModelCard
from tagger.pipeline import TrackAnalysis


class Vocabulary(ABC):
    head: Head
    #: False when the stored per-track embedding is enough (no decoding to re-tag).
    needs_audio: bool = True

    @property
    def name(self) -> str:
        return self.head.name

    @abstractmethod
    def window_probabilities(self, analysis: TrackAnalysis) -> np.ndarray:
        """``(windows, labels)`` probabilities (one row when computed from the track embedding)."""


class ModelVocabulary(Vocabulary):
    """One of the model's output heads."""

    def __init__(self, head: Head) -> None:
        self.head = head

    def window_probabilities(self, analysis: TrackAnalysis) -> np.ndarray:
        return analysis.probabilities[self.head.name]


def vocabularies_dir(database_url: str) -> Path:
    """Learned vocabularies live beside an SQLite database file, else in the XDG data dir."""
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        return Path(database_url.removeprefix("sqlite:///")).parent / "vocabularies"
    from platformdirs import user_data_dir

    return Path(user_data_dir("genre-tagger")) / "vocabularies"


def available(card: ModelCard, database_url: str) -> list[str]:
    learned = sorted(p.stem for p in vocabularies_dir(database_url).glob("*.json"))
    return sorted(card.heads) + [name for name in learned if name not in card.heads]


def resolve_vocabulary(card: ModelCard, name: str | None, database_url: str) -> Vocabulary:
    """``name`` among the model's heads, else a learned vocabulary saved beside the database."""
    name = name or card.default_head
    if name in card.heads:
        return ModelVocabulary(card.heads[name])
    path = vocabularies_dir(database_url) / f"{name}.json"
    if path.exists():
        from tagger.learned import load_learned_vocabulary

        return load_learned_vocabulary(path, card)
    raise ValueError(
        f"no vocabulary {name!r} for model {card.name!r} (available: {', '.join(available(card, database_url))})"
    )
