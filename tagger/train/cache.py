"""Log-mel spectrograms of whole clips, cached on disk so re-training never re-decodes.

One ``.npz`` per (file, feature parameters): the key hashes the file's resolved path, size and
modification time with every parameter that changes the spectrogram. Normalisation and window
sizes are *not* in the key: the cache holds the un-normalised log-mel of the whole clip, which
every configuration with the same STFT/mel settings shares. Files that fail to decode are
cached as failures too, so a broken clip is reported, not retried, on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger.audio import decode
from tagger.errors import DecodeError
from tagger.features import FeatureParams, log_mel
from tagger.train.datasets import Dataset

CACHE_VERSION = 1
# Fields that do not change a whole clip's un-normalised log-mel.
_NOT_IN_KEY = {"window_frames", "window_hop_frames", "mean", "std"}


def raw_params(params: FeatureParams) -> FeatureParams:
    """``params`` without normalisation: what the cache stores."""
    return params.with_normalisation(0.0, 1.0)


def cache_key(path: Path, params: FeatureParams) -> str:
    stat = path.stat()
    spectral = {k: v for k, v in params.to_dict().items() if k not in _NOT_IN_KEY}
    payload = {
        "v": CACHE_VERSION, "path": str(path.resolve()), "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns, "params": spectral,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class CacheStats:
    hits: int = 0
    decoded: int = 0  # files actually decoded (cache misses)
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)


class FeatureCache:
    """Whole-clip log-mel spectrograms, from ``directory`` when there, else decoded and stored."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.stats = CacheStats()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def log_mel(self, path: Path, params: FeatureParams) -> np.ndarray:
        """``(frames, n_mels)`` un-normalised log-mel of the whole file; raises DecodeError if it cannot be read."""
        params = raw_params(params)
        entry = self.directory / f"{cache_key(path, params)}.npz" if self.directory is not None else None
        if entry is not None and entry.exists():
            with np.load(entry) as stored:
                if "error" in stored.files:
                    self.stats.count("failed")
                    raise DecodeError(path, str(stored["error"]) + " (cached failure)")
                self.stats.count("hits")
                return stored["logmel"]
        self.stats.count("decoded")
        try:
            features = log_mel(decode(path, params.sample_rate), params)
        except DecodeError as error:
            self.stats.count("failed")
            if entry is not None:
                self._store(entry, error=np.array(error.reason))
            raise
        if entry is not None:
            self._store(entry, logmel=features)
        return features

    @staticmethod
    def _store(entry: Path, **arrays: np.ndarray) -> None:
        save_npz(entry, arrays)


def extract(
    dataset: Dataset,
    params: FeatureParams,
    cache: FeatureCache,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[int, np.ndarray], dict[str, str]]:
    """Log-mels of every clip, by clip index, and ``{key: reason}`` for the clips that failed to decode."""

    def one(index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, cache.log_mel(dataset.clips[index].path, params), ""
        except DecodeError as error:
            return index, None, error.reason

    features: dict[int, np.ndarray] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for index, value, reason in pool.map(one, range(len(dataset.clips))):
            if value is None:
                failed[dataset.clips[index].key] = reason
            else:
                features[index] = value
            if progress is not None:
                progress(1)
    return features, failed


def save_npz(entry: Path, arrays: dict[str, np.ndarray]) -> None:
    """Every cache entry is written this way: to a temp name of this process and thread, then renamed, so an
    interrupted run never leaves a truncated entry and two runs filling one cache never share a temp file."""
    partial = entry.with_name(f"{entry.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(partial, **arrays)  # type: ignore[arg-type]
    partial.replace(entry)
