"""What a window costs: model time per window, and the window-budget sweep (a track's decoding vs its model
time), used by the trainer for the card and by the bench's child process.

The card's ``max_windows`` trades accuracy for time; the target is that a typical 4-minute track
costs no more model time than decoding it. Timings are wall-clock on whatever machine runs the
trainer (best of a few repeats, to shed a busy machine's worst interference), so they are
reported with the machine's load average.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from tagger import audio
from tagger.audio import decode, probe
from tagger.model import Classifier, ModelCard, Prediction, load_card
from tagger.pipeline import WINDOW_CAP, analyse_track


def time_model(card_path: Path, windows: np.ndarray, threads: int, repeats: int = 3) -> float:
    """Milliseconds per window for ``windows`` through :class:`tagger.model.Classifier` (batch 8, as the tagger)."""
    classifier = Classifier(load_card(card_path), threads=threads)
    classifier.predict(windows[:8])  # warm-up: allocation, XNNPACK packing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict(windows)
        best = min(best, time.perf_counter() - started)
    return round(1000 * best / len(windows), 2)


class TimedClassifier(Classifier):
    """A Classifier that adds the CPU and wall time of each ``predict`` to :attr:`clock`."""

    def __init__(self, card: ModelCard, threads: int | None = None, batch_size: int = 8) -> None:
        super().__init__(card, threads=threads, batch_size=batch_size)
        self.clock = {"cpu": 0.0, "wall": 0.0}

    def predict(self, windows: np.ndarray) -> Prediction:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return super().predict(windows)
        finally:
            self.clock["cpu"] += time.process_time() - cpu
            self.clock["wall"] += time.perf_counter() - wall


@dataclass(frozen=True)
class Timing:
    """One ``analyse_track`` run: its CPU and wall seconds, and the parts spent in the model and in decoding."""

    windows: int
    cpu: float
    wall: float
    model_cpu: float
    model_wall: float
    decode_cpu: float  # reading the windows' segments (the rest of cpu - model_cpu is features)


@contextlib.contextmanager
def _decode_clock(clock: dict[str, float]) -> Iterator[None]:
    """Count the CPU spent in :func:`tagger.audio.read_segments` (the pipeline's decoder) into ``clock["decode"]``."""
    read_segments = audio.read_segments

    def timed(*args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        segments = read_segments(*args, **kwargs)
        while True:
            start = time.process_time()
            try:
                segment = next(segments)
            except StopIteration:
                clock["decode"] += time.process_time() - start
                return
            clock["decode"] += time.process_time() - start
            yield segment

    audio.read_segments = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        audio.read_segments = read_segments


def sweep(
    classifier: TimedClassifier, files: Sequence[Path], budgets: Sequence[int | None], repeats: int
) -> list[list[list[Timing]]]:
    """The window-budget sweep: for each budget (None = every window, up to the pipeline's cap), for each of
    ``files``, ``repeats`` runs of the tagger's own ``analyse_track``, timed. The caller reduces them (best, median)."""
    decode = {"decode": 0.0}
    result: list[list[list[Timing]]] = []
    with _decode_clock(decode):
        for budget in budgets:
            per_file = []
            for path in files:
                runs = []
                for _ in range(repeats):
                    classifier.clock.update(cpu=0.0, wall=0.0)
                    decode["decode"] = 0.0
                    cpu, wall = time.process_time(), time.perf_counter()
                    analysis = analyse_track(path, classifier, budget or WINDOW_CAP)
                    runs.append(Timing(
                        len(analysis.window_starts), time.process_time() - cpu, time.perf_counter() - wall,
                        classifier.clock["cpu"], classifier.clock["wall"], decode["decode"],
                    ))  # fmt: skip
                per_file.append(runs)
            result.append(per_file)
    return result


def time_budgets(
    card_path: Path, track: Path, budgets: Sequence[int | None], threads: int = 1, repeats: int = 2
) -> dict[str, Any]:
    """For each window budget (None = every window): the tagger's end-to-end time on ``track``, split into model
    time and the rest (decoding the windows' segments + features); and the time to decode the whole track."""
    card = load_card(card_path)
    classifier = TimedClassifier(card, threads=threads)
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
    for budget, (runs,) in zip(budgets, sweep(classifier, [track], budgets, repeats), strict=True):
        best = min(runs, key=lambda run: run.wall)
        result["budgets"][str(budget or "all")] = {
            "windows": best.windows, "total_s": round(best.wall, 3), "model_s": round(best.model_wall, 3),
            "decode_and_features_s": round(best.wall - best.model_wall, 3),
        }  # fmt: skip
    return result


def make_long_track(clips: Sequence[Path], out: Path, seconds: float = 240.0) -> Path:
    """A ~4-minute MP3 (44.1 kHz stereo, 192 kbit/s: a typical library file) made of ``clips`` back to back.

    Only for timing: a medley of clips is not a song, so no accuracy is measured on it.
    """
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
