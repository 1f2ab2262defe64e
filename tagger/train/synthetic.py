"""A synthetic folder-per-genre dataset: each "genre" has its own tempo, timbre and rhythm.

Used by tests (trainer, tagger, learn) so that everything runs without GTZAN, and small
enough to generate in seconds. Pure numpy + soundfile: no TensorFlow needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile


@dataclass(frozen=True)
class Recipe:
    """How one synthetic genre sounds."""

    tempo_bpm: float
    pitch_hz: float  # fundamental of the tonal part
    harmonics: int  # brightness of the timbre
    noise: float  # share of noise bursts (drums) vs tone
    pattern: tuple[int, ...]  # which sixteenth notes of a bar carry a hit


RECIPES: dict[str, Recipe] = {
    "drone": Recipe(60, 110.0, 1, 0.0, (1,) + (0,) * 15),
    "techno": Recipe(128, 55.0, 3, 0.6, (1, 0, 0, 0) * 4),
    "chimes": Recipe(90, 880.0, 6, 0.05, (1, 0, 0, 1, 0, 0, 1, 0) * 2),
    "breaks": Recipe(170, 220.0, 2, 0.8, (1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0)),
    "organ": Recipe(100, 330.0, 10, 0.1, (1, 1, 1, 1) * 4),
}


def render(genre: str, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """One clip of ``genre``: mono float32 in [-1, 1], varied by ``seed`` (pitch, phase, level)."""
    recipe = RECIPES[genre]
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = recipe.pitch_hz * rng.uniform(0.9, 1.1)
    tone = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 6.28)) / k for k in range(1, recipe.harmonics + 1))
    step = 60.0 / recipe.tempo_bpm / 4  # a sixteenth note, seconds
    envelope = np.zeros(n, dtype=np.float64)
    noise_track = np.zeros(n, dtype=np.float64)
    decay = np.exp(-np.arange(int(step * sample_rate)) / (0.25 * step * sample_rate))
    hit = 0
    offset = rng.uniform(0, step)
    while (start := int((offset + hit * step) * sample_rate)) < n:
        if recipe.pattern[hit % len(recipe.pattern)]:
            end = min(n, start + len(decay))
            envelope[start:end] += decay[: end - start]
            noise_track[start:end] += rng.standard_normal(end - start) * decay[: end - start]
        hit += 1
    sustained = 0.3 if recipe.noise < 0.5 else 0.0
    signal = (1 - recipe.noise) * tone * (sustained + envelope) + recipe.noise * noise_track
    signal += 0.01 * rng.standard_normal(n)
    peak = np.max(np.abs(signal)) or 1.0
    return (signal / peak * rng.uniform(0.3, 0.8)).astype(np.float32)


def write_dataset(
    root: str | Path,
    genres: list[str] | None = None,
    clips_per_genre: int = 8,
    seconds: float = 6.0,
    sample_rate: int = 22050,
    extension: str = ".flac",
    seed: int = 0,
) -> list[Path]:
    """Write ``<root>/<genre>/<genre>.NNNNN<extension>`` clips (GTZAN's layout); return their paths."""
    root = Path(root)
    paths = []
    for g, genre in enumerate(genres or list(RECIPES)):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_genre):
            path = root / genre / f"{genre}.{i:05d}{extension}"
            soundfile.write(path, render(genre, seconds, sample_rate, seed * 100_000 + g * 1000 + i), sample_rate)
            paths.append(path)
    return paths
