"""Real audio files of every supported format, generated at test time.

WAV, AIFF, FLAC, Ogg Vorbis, Opus and MP3 are written by soundfile (libsndfile); M4A/AAC
and WMA by ffmpeg (installed by ``.ci/run``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from tagger.train.synthetic import RECIPES, render

# extension -> (soundfile format, subtype); None = made by ffmpeg
SOUNDFILE_FORMATS: dict[str, tuple[str, str] | None] = {
    ".wav": ("WAV", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".m4a": None,
    ".wma": None,
}
ALL_EXTENSIONS = tuple(SOUNDFILE_FORMATS)
FFMPEG_CODECS = {".m4a": ["-c:a", "aac", "-b:a", "128k"], ".wma": ["-c:a", "wmav2", "-b:a", "128k"]}


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def write_audio(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono or (n, channels) ``samples`` to ``path`` in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extension = path.suffix.lower()
    spec = SOUNDFILE_FORMATS[extension]
    if extension == ".opus" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("Opus needs 8, 12, 16, 24 or 48 kHz")
    if spec is not None:
        soundfile.write(path, samples, sample_rate, format=spec[0], subtype=spec[1])
        return path
    wav = path.with_suffix(".tmp.wav")
    soundfile.write(wav, samples, sample_rate, subtype="PCM_16")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), *FFMPEG_CODECS[extension], str(path)]
    subprocess.run(command, check=True)
    wav.unlink()
    return path


def make_track(
    path: Path,
    genre: str = "techno",
    seconds: float = 8.0,
    sample_rate: int = 24000,
    seed: int = 0,
    stereo: bool = False,
) -> Path:
    """A synthetic track of ``genre`` (see ``tagger.train.synthetic.RECIPES``) written as ``path``."""
    assert genre in RECIPES, genre
    mono = render(genre, seconds, sample_rate, seed)
    samples = np.stack([mono, mono * 0.8], axis=1) if stereo else mono
    return write_audio(path, samples, sample_rate)
