"""Log-mel features and windows, shared by the trainer and the tagger.

Every parameter comes from :class:`FeatureParams`, which a model card carries, so the
tagger computes exactly what the network was trained on (no train/serve skew).

Frames are computed without centre padding: a window of ``F`` frames is a function of
exactly :func:`window_samples` consecutive samples, so a window can be computed from a
segment decoded on its own and equals the same window sliced out of the whole track.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

LogCompression = Literal["db", "log10_1p"]


@dataclass(frozen=True)
class FeatureParams:
    """What turns samples into network input.

    Parameters
    ----------
    sample_rate : int
        Rate in Hz the audio is decoded to.
    n_fft, hop_length : int
        STFT size and hop, in samples.
    n_mels : int
        Mel bands.
    window_frames : int
        Frames in one network input window.
    window_hop_frames : int
        Hop between consecutive windows, in frames (training extraction and ``all`` policy).
    log : {"db", "log10_1p"}
        ``db``: 10·log10(max(power, 1e-10)) (librosa's ``power_to_db`` with ref 1);
        ``log10_1p``: log10(1 + log_gain·power) (musicnn).
    mean, std : float or list of float
        Normalisation applied after the log (scalar or one value per mel band).
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    window_frames: int = 599
    window_hop_frames: int = 599
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    mel_norm: str | None = "slaney"
    mel_htk: bool = False
    log: LogCompression = "db"
    log_gain: float = 10000.0
    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(float(x) for x in values[key])
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        for key in ("mean", "std"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return {**data, **extra}

    def with_normalisation(self, mean: float | Sequence[float], std: float | Sequence[float]) -> FeatureParams:
        """A copy with new normalisation statistics (the trainer measures them)."""
        as_value = lambda v: float(v) if np.ndim(v) == 0 else tuple(float(x) for x in v)  # noqa: E731
        return _replace(self, mean=as_value(mean), std=as_value(std))

    @property
    def window_seconds(self) -> float:
        return window_samples(self) / self.sample_rate


def _replace(params: FeatureParams, **changes: Any) -> FeatureParams:
    data = {k: getattr(params, k) for k in params.__dataclass_fields__}
    data.update(changes)
    return FeatureParams(**data)


def window_samples(params: FeatureParams) -> int:
    """Samples needed for one window of ``params.window_frames`` frames."""
    return (params.window_frames - 1) * params.hop_length + params.n_fft


def frame_count(n_samples: int, params: FeatureParams) -> int:
    """Frames that fit in ``n_samples`` samples (no centre padding)."""
    if n_samples < params.n_fft:
        return 0
    return 1 + (n_samples - params.n_fft) // params.hop_length


def hz_to_mel(frequencies: np.ndarray, htk: bool = False) -> np.ndarray:
    """Hz to mels: HTK's formula, or Slaney's (linear below 1 kHz, logarithmic above), as librosa."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    linear = frequencies / _SLANEY_STEP
    logarithmic = _SLANEY_BREAK_MEL + np.log(np.maximum(frequencies, 1e-10) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(frequencies >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mels: np.ndarray, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    logarithmic = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mels - _SLANEY_BREAK_MEL))
    return np.where(mels >= _SLANEY_BREAK_MEL, logarithmic, mels * _SLANEY_STEP)


_SLANEY_STEP = 200.0 / 3  # Hz per mel below the break
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_STEP
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


@functools.lru_cache(maxsize=8)
def _mel_basis(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, norm: str | None, htk: bool
) -> np.ndarray:
    """Triangular mel filters, ``(n_fft // 2 + 1, n_mels)``; equal to ``librosa.filters.mel`` (tested).

    Written out in numpy because librosa's import pulls in numba, whose JIT cache fails in a
    read-only install (a sandboxed service) and costs seconds on a cold start.
    """
    fft_frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    top = sample_rate / 2.0 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin), htk), hz_to_mel(np.array(top), htk), n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_frequencies[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    elif norm is not None:
        raise ValueError(f"unsupported mel norm {norm!r} (slaney or none)")
    return np.ascontiguousarray(weights.T.astype(np.float32))


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    # Periodic Hann, as librosa's stft uses (scipy.signal.get_window("hann", n, fftbins=True)).
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def mel_power(samples: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Mel spectrogram (power), shape ``(frames, n_mels)``, float32."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    n_frames = frame_count(len(samples), params)
    if n_frames == 0:
        return np.zeros((0, params.n_mels), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        samples,
        shape=(n_frames, params.n_fft),
        strides=(samples.strides[0] * params.hop_length, samples.strides[0]),
        writeable=False,
    )
    spectrum = np.abs(np.fft.rfft(frames * _hann(params.n_fft), axis=1))
    if params.power != 1.0:
        spectrum = spectrum**params.power
    basis = _mel_basis(
        params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax, params.mel_norm, params.mel_htk
    )
    return (spectrum.astype(np.float32) @ basis).astype(np.float32)


def compress(mel: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Log compression then normalisation, as in training."""
    if params.log == "db":
        logged = 10.0 * np.log10(np.maximum(mel, 1e-10))
    elif params.log == "log10_1p":
        logged = np.log10(1.0 + params.log_gain * mel)
    else:  # pragma: no cover - guarded by the card schema
        raise ValueError(f"unknown log compression {params.log!r}")
    mean = np.asarray(params.mean, dtype=np.float32)
    std = np.asarray(params.std, dtype=np.float32)
    return ((logged - mean) / std).astype(np.float32)


def log_mel(samples: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Normalised log-mel spectrogram, shape ``(frames, n_mels)``."""
    return compress(mel_power(samples, params), params)


def pad_to_window(samples: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Zero-pad (silence) a segment shorter than one window, so short tracks still classify."""
    needed = window_samples(params)
    if len(samples) >= needed:
        return samples
    return np.concatenate([samples, np.zeros(needed - len(samples), dtype=np.float32)])


def window_from_segment(segment: np.ndarray, params: FeatureParams) -> np.ndarray:
    """One network window ``(window_frames, n_mels)`` from a decoded segment of one window's samples."""
    segment = pad_to_window(segment, params)[: window_samples(params)]
    return log_mel(segment, params)


def split_windows(features: np.ndarray, params: FeatureParams, hop_frames: int | None = None) -> np.ndarray:
    """Cut ``(frames, n_mels)`` features into ``(n, window_frames, n_mels)`` windows.

    A spectrogram shorter than one window gives one window padded with silence's feature value.
    """
    hop = hop_frames or params.window_hop_frames
    size = params.window_frames
    if len(features) < size:
        silence = compress(np.zeros((1, params.n_mels), dtype=np.float32), params)
        padding = np.repeat(silence, size - len(features), axis=0)
        return np.concatenate([features, padding])[None]
    starts = range(0, len(features) - size + 1, hop)
    return np.stack([features[s : s + size] for s in starts])


def window_starts(total_samples: int, params: FeatureParams, max_windows: int | None = None) -> list[int]:
    """Sample offsets of the windows to classify in a track of ``total_samples`` samples.

    All consecutive windows (hop ``window_hop_frames``) when ``max_windows`` is None or they
    are few enough; else ``max_windows`` windows spread evenly over the track, so a long mix
    costs a bounded amount of work. A track shorter than one window gives one window at 0.
    """
    length = window_samples(params)
    hop = params.window_hop_frames * params.hop_length
    if total_samples <= length:
        return [0]
    count = 1 + (total_samples - length) // hop
    if max_windows is None or count <= max_windows:
        return [i * hop for i in range(count)]
    # Centres of max_windows equal parts of the track, clamped so each window fits.
    centres = (np.arange(max_windows) + 0.5) * total_samples / max_windows
    return [int(min(max(c - length / 2, 0), total_samples - length)) for c in centres]
