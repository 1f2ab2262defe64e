from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tagger import audio
from tagger.errors import DecodeError
from tests.audio_factory import ALL_EXTENSIONS, make_track

pytestmark = pytest.mark.ffmpeg

EXPECTED_DECODER = {".m4a": "ffmpeg", ".wma": "ffmpeg"}


@pytest.mark.parametrize("extension", ALL_EXTENSIONS)
def test_every_format_decodes_to_mono_at_the_requested_rate(tmp_path: Path, extension: str) -> None:
    path = make_track(tmp_path / f"t{extension}", seconds=3.0, sample_rate=48000, stereo=True)
    info = audio.probe(path)
    assert info.decoder == EXPECTED_DECODER.get(extension, "soundfile")
    assert info.duration == pytest.approx(3.0, abs=0.1)
    samples = audio.decode(path, 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 48000) < 16000 * 0.1
    assert 0.05 < np.abs(samples).max() <= 1.0


@pytest.mark.parametrize("extension", [".flac", ".mp3", ".opus", ".m4a"])
def test_segments_equal_the_same_samples_of_the_whole_track(tmp_path: Path, extension: str) -> None:
    path = make_track(tmp_path / f"t{extension}", seconds=12.0, sample_rate=48000 if extension == ".opus" else 44100)
    whole = audio.decode(path, 16000)
    length = 16000
    consecutive = [0, 16000 - 256, 32000]  # overlapping, as windows with hop < length are
    spread = [20000, 150000]  # far apart: the reader seeks
    for starts in (consecutive, spread):
        for start, segment in zip(starts, audio.read_segments(path, 16000, starts, length), strict=True):
            np.testing.assert_allclose(segment, whole[start : start + length], atol=1e-6)


def test_segment_past_the_end_is_short_not_padded(tmp_path: Path) -> None:
    path = make_track(tmp_path / "t.flac", seconds=2.0)
    (segment,) = audio.read_segments(path, 16000, [16000 * 3 // 2], 16000)
    assert 0 < len(segment) <= 8000 + 10


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.flac", b"", "not"),
        ("text.flac", b"this is a shopping list, not music\n" * 20, "not"),
        ("noise.mp3", os.urandom(4096), "not"),
    ],
)
def test_non_audio_gives_a_decode_error_naming_the_file(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError) as caught:
        audio.probe(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="no such file"):
        audio.probe(tmp_path / "gone.flac")


def test_wrong_extension_still_decodes(tmp_path: Path) -> None:
    flac = make_track(tmp_path / "t.flac", seconds=2.0)
    disguised = flac.rename(tmp_path / "t.mp3")
    assert len(audio.decode(disguised, 16000)) == pytest.approx(32000, abs=200)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mono_mixdown_equals_the_channel_mean_bit_for_bit(channels: int, dtype: type) -> None:
    rng = np.random.default_rng(channels)
    block = (3 * rng.standard_normal((10_000, channels))).astype(dtype)
    block[5, 0], block[7, -1], block[9, 0] = np.nan, np.inf, -np.inf
    expected = np.nan_to_num(block.mean(axis=1).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    mono = audio._to_mono(block)
    assert mono.dtype == np.float32
    np.testing.assert_array_equal(mono, expected)


def test_spread_segments_decode_little_more_than_they_need(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile

    path = make_track(tmp_path / "t.flac", seconds=60.0, sample_rate=44100, stereo=True)
    decoded: list[int] = []
    read = soundfile.SoundFile.read

    def counting_read(self: soundfile.SoundFile, *args: object, **kwargs: object) -> np.ndarray:
        block = read(self, *args, **kwargs)  # type: ignore[arg-type]
        decoded.append(len(block))
        return block

    monkeypatch.setattr(soundfile.SoundFile, "read", counting_read)
    starts = [0, 16000 * 20, 16000 * 40]  # 1-second segments, far apart: one seek each
    segments = list(audio.read_segments(path, 16000, starts, 16000))
    assert [len(s) for s in segments] == [16000] * 3
    assert sum(decoded) < 3 * 1.5 * 44100  # not a second whole block per segment for the resampler's delay
