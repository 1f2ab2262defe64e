"""Frozen MSD_musicnn outputs (200-d embedding + 50-tag taggram) of every clip's windows, cached on disk.

Transfer learning trains only a small head, so the expensive part is running the backbone once
per window; those outputs are stored per clip, keyed by the clip's log-mel cache key, the
checkpoint's fingerprint and the window layout, so every later run (CV, thresholds, the window
curve, re-training the shipped head) reads them back instead of recomputing.

Three window sets per clip, all cut from the cached whole-clip log-mel:

* ``grid``: consecutive windows from frame 0, hop 187 frames: exactly what the tagger
  classifies with the ``all`` policy (features have no centre padding, see
  :mod:`tagger.features`). Evaluation uses these.
* ``offset``: the same grid shifted by half a window (93 frames), used only as extra training
  windows (a cheap, label-preserving augmentation; never evaluated on).
* ``spread[N]``: the ``N`` windows :func:`tagger.features.window_starts` picks when the card's
  ``max_windows`` is ``N`` and the clip has more than ``N`` windows, snapped to the nearest
  frame (at most 128 samples = 8 ms off); the window-budget curve uses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import DecodeError
from tagger.features import FeatureParams, split_windows, window_starts
from tagger.train.cache import FeatureCache, cache_key, raw_params, save_npz
from tagger.train.datasets import Dataset

OUTPUTS_VERSION = 1
OFFSET_FRAMES = 93  # half of a 187-frame window
SPREAD_BUDGETS: tuple[int, ...] = (1, 2, 4, 8, 16)


@dataclass
class WindowOutputs:
    """Backbone outputs of a set of windows: ``embedding`` ``(n, 200)`` and ``taggram`` ``(n, 50)``."""

    embedding: np.ndarray
    taggram: np.ndarray

    def __len__(self) -> int:
        return len(self.embedding)


@dataclass
class ClipOutputs:
    """One clip's backbone outputs on its evaluation grid, the half-hop offset grid and spread budgets."""

    grid: WindowOutputs
    offset: WindowOutputs
    spread: dict[int, WindowOutputs] = field(default_factory=dict)  # budget -> outputs (only budgets < grid size)
    frames: int = 0


def checkpoint_fingerprint(prefix: str) -> str:
    """sha256 of the checkpoint's index and data files: which weights produced the cached outputs."""
    digest = hashlib.sha256()
    for suffix in (".index", ".data-00000-of-00001"):
        with open(prefix + suffix, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def frame_windows(logmel: np.ndarray, params: FeatureParams, start_frame: int = 0) -> np.ndarray:
    """Consecutive windows from ``start_frame`` (empty when no whole window fits there, unless it is 0)."""
    if start_frame and len(logmel) - start_frame < params.window_frames:
        return np.zeros((0, params.window_frames, params.n_mels), np.float32)
    return split_windows(logmel[start_frame:], params).astype(np.float32)


def spread_windows(logmel: np.ndarray, params: FeatureParams, budget: int) -> np.ndarray | None:
    """The windows the tagger classifies under ``max_windows=budget``; None when that is the whole grid."""
    frames = len(logmel)
    total_samples = (frames - 1) * params.hop_length + params.n_fft if frames else 0
    grid = 1 + (frames - params.window_frames) // params.window_hop_frames if frames >= params.window_frames else 1
    if grid <= budget:
        return None
    starts = window_starts(total_samples, params, budget)
    offsets = [min(round(s / params.hop_length), frames - params.window_frames) for s in starts]
    return np.stack([logmel[o : o + params.window_frames] for o in offsets]).astype(np.float32)


class BackboneOutputs:
    """Runs a float Keras musicnn model over clips' windows, caching the outputs per clip."""

    def __init__(
        self,
        model: Any,
        params: FeatureParams,
        features: FeatureCache,
        directory: Path | None,
        fingerprint: str,
        budgets: Sequence[int] = SPREAD_BUDGETS,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.params = params
        self.features = features
        self.directory = directory
        self.fingerprint = fingerprint
        self.budgets = tuple(budgets)
        self.batch_size = batch_size
        self.computed = 0
        self.cached = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _key(self, path: Path) -> str:
        payload = {
            "v": OUTPUTS_VERSION,
            "logmel": cache_key(path, raw_params(self.params)),
            "window": [self.params.window_frames, self.params.window_hop_frames, OFFSET_FRAMES],
            "budgets": list(self.budgets),
            "weights": self.fingerprint,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    def run(self, windows: np.ndarray) -> WindowOutputs:
        """Float outputs of ``windows`` ``(n, 187, 96)`` in inference mode."""
        if len(windows) == 0:
            return WindowOutputs(np.zeros((0, 200), np.float32), np.zeros((0, 50), np.float32))
        embeddings, taggrams = [], []
        for begin in range(0, len(windows), self.batch_size):
            out = self.model(windows[begin : begin + self.batch_size], training=False)
            embeddings.append(np.asarray(out["embedding"], dtype=np.float32))
            taggrams.append(np.asarray(out["taggram"], dtype=np.float32))
        return WindowOutputs(np.concatenate(embeddings), np.concatenate(taggrams))

    def clip(self, path: Path) -> ClipOutputs:
        """Outputs of one clip, from the cache when there (raises DecodeError for an unreadable clip)."""
        entry = self.directory / f"{self._key(path)}.npz" if self.directory is not None else None
        if entry is not None and entry.exists():
            with np.load(entry) as stored:
                self.cached += 1
                return _unpack(stored)
        logmel = self.features.log_mel(path, self.params)
        outputs = ClipOutputs(
            grid=self.run(frame_windows(logmel, self.params)),
            offset=self.run(frame_windows(logmel, self.params, OFFSET_FRAMES)),
            frames=len(logmel),
        )
        for budget in self.budgets:
            chosen = spread_windows(logmel, self.params, budget)
            if chosen is not None:
                outputs.spread[budget] = self.run(chosen)
        self.computed += 1
        if entry is not None:
            _store(entry, outputs)
        return outputs


def _unpack(stored: Any) -> ClipOutputs:
    def pair(prefix: str) -> WindowOutputs:
        return WindowOutputs(stored[f"{prefix}_embedding"], stored[f"{prefix}_taggram"])

    spread = {
        int(name.split("_")[1]): pair(f"spread_{name.split('_')[1]}")
        for name in stored.files
        if name.startswith("spread_") and name.endswith("_embedding")
    }
    return ClipOutputs(pair("grid"), pair("offset"), spread, int(stored["frames"]))


def _store(entry: Path, outputs: ClipOutputs) -> None:
    arrays: dict[str, np.ndarray] = {"frames": np.array(outputs.frames)}
    for prefix, pair in [("grid", outputs.grid), ("offset", outputs.offset)] + [
        (f"spread_{n}", p) for n, p in outputs.spread.items()
    ]:
        arrays[f"{prefix}_embedding"] = pair.embedding
        arrays[f"{prefix}_taggram"] = pair.taggram
    save_npz(entry, arrays)


def all_outputs(
    dataset: Dataset, backbone: BackboneOutputs, progress: Callable[[int, int], None] | None = None
) -> tuple[dict[int, ClipOutputs], dict[str, str]]:
    """Outputs of every clip by index, and ``{key: reason}`` for clips that could not be decoded."""
    outputs: dict[int, ClipOutputs] = {}
    failed: dict[str, str] = {}
    for index, clip in enumerate(dataset.clips):
        try:
            outputs[index] = backbone.clip(clip.path)
        except DecodeError as error:
            failed[clip.key] = error.reason
        if progress is not None:
            progress(index + 1, len(dataset.clips))
    return outputs, failed
