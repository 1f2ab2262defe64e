"""The bench's audio corpus: 4-minute stereo MP3 and FLAC tracks, a 30-minute and a 2-hour MP3, a library of
many tiny WAVs; generated once into a folder (reused by ``--corpus``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.measure import console

SAMPLE_RATE = 44100
TRACK_SECONDS = 240.0
GENRES = ("techno", "organ", "breaks", "chimes", "drone")


@dataclass
class Corpus:
    tracks: list[Path]  # 4-minute MP3 and FLAC
    half_hour: Path | None
    two_hours: Path
    small_library: Path  # many tiny WAVs
    small_count: int
    stub: Path  # one 1-second WAV: start-up cost of a scan
    empty: Path
    mp3_encoder: str


def _stereo_track(genre: str, seconds: float, seed: int) -> np.ndarray:
    """Music-like stereo: the synthetic genre in 60-second sections, the channels two variations of it."""
    from tagger.train.synthetic import render

    sections = []
    for section in range(int(np.ceil(seconds / 60.0))):
        length = min(60.0, seconds - 60.0 * section)
        left = render(genre, length, SAMPLE_RATE, seed * 100 + section)
        right = render(genre, length, SAMPLE_RATE, seed * 100 + section + 50)
        sections.append(np.stack([left, 0.6 * left + 0.4 * right], axis=1))
    return np.concatenate(sections).astype(np.float32)


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def _write_mp3(path: Path, samples: np.ndarray) -> None:
    if have_ffmpeg():
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "2",
            "-i", "-", "-c:a", "libmp3lame", "-b:a", "192k", str(path),
        ]  # fmt: skip
        subprocess.run(command, input=samples.tobytes(), check=True)
    else:  # libsndfile's LAME at its default (VBR) quality
        soundfile.write(path, samples, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")


def _concat_mp3(path: Path, part: Path, copies: int, tmp: Path) -> None:
    """A long MP3 in bounded memory: the 4-minute one repeated (stream copy, no re-encoding)."""
    if have_ffmpeg():
        listing = tmp / f"{path.stem}.txt"
        listing.write_text("".join(f"file '{part}'\n" for _ in range(copies)))
        command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
        subprocess.run([*command, "-c", "copy", str(path)], check=True)
        listing.unlink()
        return
    with (
        soundfile.SoundFile(path, "w", SAMPLE_RATE, 2, format="MP3", subtype="MPEG_LAYER_III") as out,
        soundfile.SoundFile(part) as source,
    ):
        for _ in range(copies):
            source.seek(0)
            for block in source.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                out.write(block)


def build_corpus(root: Path, n_tracks: int, quick: bool, small_count: int) -> Corpus:
    """Files already in ``root`` (a reused ``--corpus``) are kept; missing ones are generated."""
    tracks = build_tracks(root, n_tracks)
    first_mp3 = tracks[0]
    long_dir = root / "long"
    long_dir.mkdir(exist_ok=True)
    half_hour = None if quick else long_dir / "half-hour.mp3"
    two_hours = long_dir / "two-hours.mp3"
    for long_path, copies in ((half_hour, 8), (two_hours, 30)):
        if long_path is not None and not long_path.exists():
            console.log(f"corpus: {long_path.name} ({copies} x 4 min)")
            _concat_mp3(long_path, first_mp3, copies, root)
    small = root / f"small-{small_count}"
    if not (small / ".complete").exists():
        console.log(f"corpus: {small_count} tiny WAVs for the re-scan")
        rng = np.random.default_rng(0)
        for i in range(small_count):
            folder = small / f"album{i // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / f"{i:05d}.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000)
        (small / ".complete").write_text("")
    stub = root / "stub"
    stub.mkdir(exist_ok=True)
    if not (stub / "one-second.wav").exists():
        soundfile.write(stub / "one-second.wav", _stereo_track("techno", 1.0, seed=99), SAMPLE_RATE)
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    encoder = "ffmpeg libmp3lame CBR 192k" if have_ffmpeg() else "libsndfile LAME VBR (no ffmpeg)"
    return Corpus(tracks, half_hour, two_hours, small, small_count, stub, empty, encoder)


def build_tracks(root: Path, n_tracks: int) -> list[Path]:
    """The 4-minute tracks of the corpus in ``root``/tracks, alternately MP3 and FLAC (kept if already there)."""
    root.mkdir(parents=True, exist_ok=True)
    tracks: list[Path] = []
    for i in range(n_tracks):
        extension = ".mp3" if i % 2 == 0 else ".flac"
        path = root / "tracks" / f"track{i:02d}{extension}"
        tracks.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        console.log(f"corpus: {path.name} (4 min stereo {extension[1:]})")
        samples = _stereo_track(GENRES[i % len(GENRES)], TRACK_SECONDS, seed=i)
        if extension == ".mp3":
            _write_mp3(path, samples)
        else:
            soundfile.write(path, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return tracks


def copy_files(files: Sequence[Path], folder: Path, copies: int = 1) -> Path:
    """Copies of ``files`` in a new ``folder``, each ``copies`` times under its own name.

    Real copies, not hard links: a scan counts the names of one file as one track, and writes a
    hard-linked file in place (``hardlinks = "keep"``), which would tag the corpus itself. ``copies``
    > 1: more tracks per scan, so that the scan's start-up cost, subtracted, leaves a per-track figure
    above the noise.
    """
    folder.mkdir(parents=True)
    for copy in range(copies):
        for path in files:
            name = path.name if copies == 1 else f"{path.stem}-{copy}{path.suffix}"
            shutil.copyfile(path, folder / name)
    return folder
