"""Small audio folders for the trainer's data tests (a GTZAN-like layout of short silent WAVs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from tagger.features import FeatureParams

PARAMS = FeatureParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64, window_frames=32, window_hop_frames=32)


def touch_audio(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def gtzan_like(root: Path, counts: dict[str, int]) -> None:
    for genre, count in counts.items():
        for i in range(count):
            touch_audio(root / genre / f"{genre}.{i:05d}.wav")
