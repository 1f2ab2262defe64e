"""One track: path -> windows -> probabilities. No database, no tag writes.

Segments are decoded one window at a time and classified in batches, so memory holds one
batch of windows whatever the track's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger import audio, features
from tagger.errors import UnsupportedFormatError
from tagger.files import unsupported_reason
from tagger.model import Classifier

# Upper bound on windows per track whatever the policy, so a 3-hour file costs bounded time.
WINDOW_CAP = 256


@dataclass
class TrackAnalysis:
    """What the model heard in one track."""

    path: Path
    model_id: str
    duration: float  # seconds
    window_starts: list[float]  # seconds
    probabilities: dict[str, np.ndarray]  # head -> (windows, labels)
    embedding: np.ndarray | None  # mean of the windows' embeddings
    # Rebuilt from the database (tagger.store.retag): the stored mood decision, whose scores a re-decision reads.
    stored_moods: dict[str, Any] | None = None

    def window_timeline(self, probabilities: np.ndarray) -> dict[str, list]:
        """JSON-ready per-window record kept in the database (one row, no starts, for a track-level head)."""
        starts = self.window_starts if len(probabilities) == len(self.window_starts) else []
        return {"starts": [round(s, 3) for s in starts], "probabilities": np.round(probabilities, 4).tolist()}


def analyse_track(path: str | Path, classifier: Classifier, max_windows: int | None = None) -> TrackAnalysis:
    """Decode ``path`` window by window and classify it; raises :class:`tagger.errors.DecodeError`
    (or :class:`tagger.errors.UnsupportedFormatError` for a format whose tags are not written)."""
    if (reason := unsupported_reason(path)) is not None:
        raise UnsupportedFormatError(path, reason)
    params = classifier.card.features
    info = audio.probe(path)
    total = info.samples_at(params.sample_rate)
    limit = min(max_windows or classifier.card.max_windows or WINDOW_CAP, WINDOW_CAP)
    starts = features.window_starts(total, params, limit)
    length = features.window_samples(params)

    heads: dict[str, list[np.ndarray]] = {name: [] for name in classifier.card.heads}
    embeddings: list[np.ndarray] = []
    kept_starts: list[int] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        prediction = classifier.predict(np.stack(batch))
        for name, values in prediction.probabilities.items():
            heads[name].append(values)
        if prediction.embeddings is not None:
            embeddings.append(prediction.embeddings)
        batch.clear()

    for start, segment in zip(
        starts, audio.read_segments(path, params.sample_rate, starts, length, info), strict=False
    ):
        if len(segment) == 0 and kept_starts:
            break  # the container over-stated its length
        batch.append(features.window_from_segment(segment, params))
        kept_starts.append(start)
        if len(batch) == classifier.batch_size:
            flush()
    if batch:
        flush()
    if not kept_starts:
        raise audio.DecodeError(path, "no audio samples")
    return TrackAnalysis(
        path=Path(path),
        model_id=classifier.card.model_id,
        duration=info.duration,
        window_starts=[s / params.sample_rate for s in kept_starts],
        probabilities={name: np.concatenate(chunks) for name, chunks in heads.items()},
        embedding=np.concatenate(embeddings).mean(axis=0) if embeddings else None,
    )
