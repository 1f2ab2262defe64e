from __future__ import annotations

import librosa
import numpy as np
import pytest

from tagger import features
from tagger.features import FeatureParams

PARAMS = FeatureParams(
    sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, window_frames=20, window_hop_frames=20, log="log10_1p"
)


def test_mel_power_matches_librosa_without_centering() -> None:
    samples = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    ours = features.mel_power(samples, PARAMS)
    reference = librosa.feature.melspectrogram(
        y=samples, sr=16000, n_fft=512, hop_length=256, n_mels=96, center=False
    ).T
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4)


def test_window_needs_exactly_window_samples() -> None:
    length = features.window_samples(PARAMS)
    assert length == 19 * 256 + 512
    assert features.frame_count(length, PARAMS) == 20
    assert features.frame_count(length - 1, PARAMS) == 19
    window = features.window_from_segment(np.zeros(100, np.float32), PARAMS)
    assert window.shape == (20, 96)


def test_segment_windows_equal_windows_sliced_from_whole_track() -> None:
    samples = np.random.default_rng(1).standard_normal(16000 * 3).astype(np.float32)
    whole = features.split_windows(features.log_mel(samples, PARAMS), PARAMS)
    length = features.window_samples(PARAMS)
    starts = features.window_starts(len(samples), PARAMS)
    segments = np.stack([features.window_from_segment(samples[s : s + length], PARAMS) for s in starts])
    assert len(starts) == len(whole)
    np.testing.assert_allclose(segments, whole, atol=1e-5)


@pytest.mark.parametrize("total_seconds", [0.1, 3.0, 60.0, 7200.0])
def test_window_starts_fit_inside_the_track(total_seconds: float) -> None:
    total = int(total_seconds * 16000)
    length = features.window_samples(PARAMS)
    for cap in (None, 1, 4):
        starts = features.window_starts(total, PARAMS, cap)
        assert starts == sorted(starts)
        assert starts[0] >= 0
        if total > length:
            assert starts[-1] + length <= total
        if cap is not None:
            assert len(starts) <= cap


def test_spread_windows_cover_the_track() -> None:
    total = 16000 * 600
    starts = features.window_starts(total, PARAMS, 4)
    assert len(starts) == 4
    assert starts[0] < total / 4 < starts[1] < total / 2 < starts[2] < 3 * total / 4 < starts[3]


def test_short_features_pad_to_one_window_with_silence() -> None:
    short = np.ones((5, 96), np.float32)
    windows = features.split_windows(short, PARAMS)
    assert windows.shape == (1, 20, 96)
    np.testing.assert_array_equal(windows[0, 5:], 0.0)  # log10(1 + 0) = 0


def test_params_round_trip_through_a_card_dict() -> None:
    params = PARAMS.with_normalisation([1.0] * 96, 2.0)
    again = FeatureParams.from_dict(params.to_dict())
    assert again == params
    assert isinstance(again.mean, tuple)


def test_db_compression_and_normalisation() -> None:
    params = FeatureParams(log="db", mean=-50.0, std=10.0)
    np.testing.assert_allclose(features.compress(np.array([[1e-5]], np.float32), params), [[0.0]], atol=1e-5)


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "n_mels", "fmin", "fmax", "norm", "htk"),
    [
        (22050, 2048, 128, 0.0, None, "slaney", False),
        (16000, 512, 96, 0.0, None, "slaney", False),
        (44100, 1024, 40, 50.0, 8000.0, None, True),
    ],
)
def test_mel_filterbank_equals_librosa(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, norm: str | None, htk: bool
) -> None:
    ours = features._mel_basis(sample_rate, n_fft, n_mels, fmin, fmax, norm, htk)
    reference = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=norm, htk=htk
    ).T
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-7)


def test_feature_module_does_not_import_librosa() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from tagger import features; features.log_mel(np.zeros(5000, np.float32), "
        "features.FeatureParams()); print('librosa' in sys.modules, 'numba' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]
