"""What a window costs: int8 model time per window, and a long track's decoding vs its model time.

The card's ``max_windows`` trades accuracy for time; the target is that a typical 4-minute track
costs no more model time than decoding it. Timings are wall-clock on whatever machine runs the
trainer (best of a few repeats, to shed a busy machine's worst interference), so they are
reported with the machine's load average.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def time_model(card_path: Path, windows: np.ndarray, threads: int, repeats: int = 3) -> float:
    """Milliseconds per window for ``windows`` through :class:`tagger.model.Classifier` (batch 8, as the tagger)."""
    from tagger.model import Classifier, load_card

    classifier = Classifier(load_card(card_path), threads=threads)
    classifier.predict(windows[:8])  # warm-up: allocation, XNNPACK packing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict(windows)
        best = min(best, time.perf_counter() - started)
    return round(1000 * best / len(windows), 2)


class _TimedClassifier:
    """A Classifier whose ``predict`` time is accumulated (the rest of analyse_track is decoding + features)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.card = inner.card
        self.batch_size = inner.batch_size
        self.seconds = 0.0

    def predict(self, windows: np.ndarray) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.predict(windows)
        finally:
            self.seconds += time.perf_counter() - started


def time_budgets(
    card_path: Path, track: Path, budgets: Sequence[int | None], threads: int = 1, repeats: int = 2
) -> dict[str, Any]:
    """For each window budget (None = every window): the tagger's end-to-end time on ``track``, split into model
    time and the rest (decoding the windows' segments + features); and the time to decode the whole track."""
    from tagger.audio import decode, probe
    from tagger.model import Classifier, load_card
    from tagger.pipeline import WINDOW_CAP, analyse_track

    card = load_card(card_path)
    classifier = Classifier(card, threads=threads)
    info = probe(track)
    decode_best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        decode(track, card.features.sample_rate)
        decode_best = min(decode_best, time.perf_counter() - started)
    result: dict[str, Any] = {
        "track": track.name,
        "seconds": round(info.duration, 1),
        "decoder": info.decoder,
        "threads": threads,
        "full_decode_s": round(decode_best, 3),
        "load_average": round(os.getloadavg()[0], 1),
        "budgets": {},
    }
    for budget in budgets:
        best: tuple[float, float, int] | None = None
        for _ in range(repeats):
            timed = _TimedClassifier(classifier)
            started = time.perf_counter()
            analysis = analyse_track(track, timed, budget or WINDOW_CAP)  # type: ignore[arg-type]
            total = time.perf_counter() - started
            if best is None or total < best[0]:
                best = (total, timed.seconds, len(analysis.window_starts))
        assert best is not None
        result["budgets"][str(budget or "all")] = {
            "windows": best[2], "total_s": round(best[0], 3), "model_s": round(best[1], 3),
            "decode_and_features_s": round(best[0] - best[1], 3),
        }  # fmt: skip
    return result


def make_long_track(clips: Sequence[Path], out: Path, seconds: float = 240.0) -> Path:
    """A ~4-minute MP3 (44.1 kHz stereo, 192 kbit/s: a typical library file) made of ``clips`` back to back.

    Only for timing: a medley of clips is not a song, so no accuracy is measured on it.
    """
    import soundfile

    from tagger.audio import decode

    rate = 44100
    pieces: list[np.ndarray] = []
    total = 0
    for clip in clips:
        samples = decode(clip, rate)
        pieces.append(samples)
        total += len(samples)
        if total >= seconds * rate:
            break
    audio = np.concatenate(pieces)[: int(seconds * rate)]
    stereo = np.stack([audio, audio], axis=1)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:  # no encoder: FLAC through libsndfile still times a real decoder
        flac = out.with_suffix(".flac")
        soundfile.write(flac, stereo, rate)
        return flac
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "long.wav"
        soundfile.write(wav, stereo, rate)
        subprocess.run(
            [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-b:a", "192k", str(out)],
            check=True,
        )
    return out
