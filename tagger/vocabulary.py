"""Vocabularies: the genre lists a track can be tagged in, and applying them (fitting one is :mod:`tagger.learn`).

A model's own heads (``gtzan``, ``msd``, ...) read the per-window probabilities the network
outputs. A *learned* vocabulary (``tagger learn``) is a head over the track embedding the
model also outputs, so applying it to a scanned track needs no decoding at all: its card
(``<name>.json`` beside the database) holds the labels, thresholds and the head's weights.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_data_dir

from tagger.errors import ModelError
from tagger.model import Head, HeadRole, ModelCard
from tagger.pipeline import TrackAnalysis

CARD_KIND = "genre-tagger learned vocabulary"
CARD_SCHEMA_VERSION = 1


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


@dataclass
class EmbeddingHead:
    """``sigmoid(((x - mean) / scale) @ weights.T + bias)``: one row of weights per label."""

    mean: np.ndarray  # (dims,)
    scale: np.ndarray  # (dims,)
    weights: np.ndarray  # (labels, dims)
    bias: np.ndarray  # (labels,)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(embeddings).astype(np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(z @ self.weights.T + self.bias, -60.0, 60.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": _floats(self.mean),
            "scale": _floats(self.scale),
            "weights": [_floats(row) for row in self.weights],
            "bias": _floats(self.bias),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingHead:
        head = cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=np.asarray(data["bias"], dtype=np.float64),
        )
        dims = head.mean.shape
        if head.scale.shape != dims or head.weights.ndim != 2 or head.weights.shape[1:] != dims:
            raise ValueError("linear head: mean, scale and weights disagree on the embedding size")
        if head.bias.shape != head.weights.shape[:1] or not np.all(head.scale > 0):
            raise ValueError("linear head: bias does not match the weights, or a scale is not positive")
        return head


class LearnedVocabulary(Vocabulary):
    """The owner's genres (or moods: ``head.role``): one probability row per track, from its embedding alone."""

    needs_audio = False

    def __init__(
        self, head: Head, linear: EmbeddingHead, model_id: str, learned_at: datetime, card: dict[str, Any]
    ) -> None:
        self.head = head
        self.linear = linear
        self.model_id = model_id
        self.learned_at = learned_at  # naive UTC, comparable with Result.created_at
        self.card = card

    def window_probabilities(self, analysis: TrackAnalysis) -> np.ndarray:
        if analysis.model_id != self.model_id:
            raise ModelError(f"vocabulary {self.name!r} needs embeddings of {self.model_id}, not {analysis.model_id}")
        if analysis.embedding is None or analysis.embedding.shape != self.linear.mean.shape:
            raise ModelError(f"vocabulary {self.name!r} needs a {self.linear.mean.shape[0]}-d embedding of the track")
        from tagger.store.embedding import as_stored  # see vocabularies_dir

        return self.linear.probabilities(as_stored(analysis.embedding)).astype(np.float32)


def load_learned_vocabulary(path: str | Path, card: ModelCard) -> LearnedVocabulary:
    """Read a learned vocabulary's card; refuse one learned on another model's embeddings."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read learned vocabulary {path}: {error}") from error
    if not isinstance(data, dict) or data.get("kind") != CARD_KIND:
        raise ModelError(f"{path} is not a learned vocabulary card")
    if int(data.get("schema_version", 0)) > CARD_SCHEMA_VERSION:
        raise ModelError(f"{path} was written by a newer genre-tagger (schema {data.get('schema_version')})")
    if data.get("model_id") != card.model_id:
        raise ModelError(
            f"vocabulary {path.stem!r} was learned on embeddings of {data.get('model_id')}, and this model is "
            f"{card.model_id}: run `tagger scan` and `tagger learn` with this model, or pick --model "
            f"{str(data.get('model_id', '')).split('@')[0]}"
        )
    if card.embedding_output is None:
        raise ModelError(f"model {card.model_id} has no embedding output")
    try:
        head = Head.from_dict(path.stem, data["head"])
        linear = EmbeddingHead.from_dict(data["linear"])
        learned_at = datetime.fromisoformat(data["learned_at"].replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"learned vocabulary {path} is missing or has a bad field: {error}") from error
    if head.task != "multilabel" or len(head.labels) != len(linear.bias):
        raise ModelError(f"learned vocabulary {path}: {len(head.labels)} labels for {len(linear.bias)} weight rows")
    return LearnedVocabulary(head, linear, card.model_id, learned_at.replace(tzinfo=None), data)


def vocabularies_dir(database_url: str) -> Path:
    """Learned vocabularies live beside an SQLite database file, else in the XDG data dir."""
    from tagger.store.db import sqlite_file  # tagger.store pulls in SQLAlchemy: not for the model's own heads

    if (file := sqlite_file(database_url)) is not None:
        return file.parent / "vocabularies"
    return Path(user_data_dir("genre-tagger")) / "vocabularies"


def learned_role(path: Path) -> HeadRole | None:
    """The role of the learned vocabulary saved at ``path`` (a card without one is a genre vocabulary);
    None when there is no readable card there."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    head = data.get("head") if isinstance(data, dict) and data.get("kind") == CARD_KIND else None
    if not isinstance(head, dict):
        return None
    return "mood" if head.get("role") == "mood" else "genre"


def learned_vocabularies(database_url: str, role: HeadRole = "genre") -> list[str]:
    """The names of the vocabularies of ``role`` that ``tagger learn`` saved beside the database."""
    paths = sorted(vocabularies_dir(database_url).glob("*.json"))
    return [path.stem for path in paths if learned_role(path) == role]


def available(card: ModelCard, database_url: str) -> list[str]:
    """Genre vocabularies: the model's genre heads, then the learned ones."""
    learned = learned_vocabularies(database_url, "genre")
    return sorted(genre_heads(card)) + [name for name in learned if name not in card.heads]


def genre_heads(card: ModelCard) -> list[str]:
    """The card's heads that are genre vocabularies (a mood head is written into the MOOD field instead)."""
    return [name for name, head in card.heads.items() if head.role == "genre"]


def resolve_vocabulary(card: ModelCard, name: str | None, database_url: str) -> Vocabulary:
    """``name`` among the model's heads, else a learned vocabulary saved beside the database."""
    name = name or card.default_head
    if name in card.heads:
        if card.heads[name].role != "genre":
            raise ValueError(f"{name!r} is model {card.name!r}'s {card.heads[name].role} head, not a genre vocabulary")
        return ModelVocabulary(card.heads[name])
    path = vocabularies_dir(database_url) / f"{name}.json"
    if path.exists():
        learned = load_learned_vocabulary(path, card)
        if learned.head.role != "genre":
            raise ValueError(f"learned vocabulary {name!r} is a {learned.head.role} vocabulary, not a genre one")
        return learned
    raise ValueError(
        f"no vocabulary {name!r} for model {card.name!r} (available: {', '.join(available(card, database_url))})"
    )


def resolve_mood_vocabulary(card: ModelCard, name: str | None, database_url: str) -> Vocabulary | None:
    """What a scan writes into the MOOD field: the learned mood vocabulary ``name``, else the card's
    ``mood_head``; None when the model has no mood head and no name is given."""
    if name is None:
        return None if card.mood_head is None else ModelVocabulary(card.heads[card.mood_head])
    if name in card.heads and card.heads[name].role == "mood":
        return ModelVocabulary(card.heads[name])
    path = vocabularies_dir(database_url) / f"{name}.json"
    if not path.exists():
        moods = [n for n, head in card.heads.items() if head.role == "mood"]
        moods += [n for n in learned_vocabularies(database_url, "mood") if n not in card.heads]
        raise ValueError(
            f"no mood vocabulary {name!r} for model {card.name!r} (available: {', '.join(moods) or 'none'}; "
            "learn one with `tagger learn --field mood`)"
        )
    learned = load_learned_vocabulary(path, card)
    if learned.head.role != "mood":
        raise ValueError(f"learned vocabulary {name!r} is a {learned.head.role} vocabulary, not a mood one")
    return learned


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.round(np.asarray(values, dtype=np.float64), 7)]
