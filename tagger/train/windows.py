"""Turn cached whole-clip log-mels into normalised network windows, remembering each window's clip.

Windows are cut with :func:`tagger.features.split_windows` from the whole clip's frames; since
features have no centre padding this is exactly what the tagger computes from the same
offsets (:func:`tagger.features.window_starts`), so evaluation sees what tagging will see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tagger.features import FeatureParams, split_windows


@dataclass(frozen=True)
class WindowSet:
    """``windows`` ``(n, frames, mels)`` normalised; ``labels`` and ``tracks`` (clip index) per window."""

    windows: np.ndarray
    labels: np.ndarray
    tracks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def track_ids(self) -> np.ndarray:
        """Clip indices in order of first appearance."""
        _, first = np.unique(self.tracks, return_index=True)
        return self.tracks[np.sort(first)]


def measure_normalisation(features: Sequence[np.ndarray]) -> tuple[float, float]:
    """Scalar mean and standard deviation of every log-mel value of the training clips."""
    count = sum(f.size for f in features)
    if count == 0:
        raise ValueError("no training frames to measure normalisation on")
    total = sum(float(f.sum(dtype=np.float64)) for f in features)
    mean = total / count
    squares = sum(float(((f.astype(np.float64) - mean) ** 2).sum()) for f in features)
    return mean, max(float(np.sqrt(squares / count)), 1e-6)


def normalise(raw: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Apply ``params``' mean/std to an un-normalised log-mel (what the cache stores)."""
    mean = np.asarray(params.mean, dtype=np.float32)
    std = np.asarray(params.std, dtype=np.float32)
    return ((raw - mean) / std).astype(np.float32)


def make_windows(
    features: Mapping[int, np.ndarray],
    indices: Sequence[int],
    labels: Sequence[int],
    params: FeatureParams,
    hop_frames: int | None = None,
) -> WindowSet:
    """Windows of the clips ``indices`` (those with features), hop ``hop_frames`` (default: the card's)."""
    chunks: list[np.ndarray] = []
    window_labels: list[int] = []
    tracks: list[int] = []
    for index in indices:
        if index not in features:
            continue
        windows = split_windows(normalise(features[index], params), params, hop_frames)
        chunks.append(windows)
        window_labels.extend([labels[index]] * len(windows))
        tracks.extend([index] * len(windows))
    shape = (0, params.window_frames, params.n_mels)
    return WindowSet(
        windows=np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(shape, np.float32),
        labels=np.asarray(window_labels, dtype=np.int64),
        tracks=np.asarray(tracks, dtype=np.int64),
    )
