"""The feature cache: a second run decodes nothing, a changed file is noticed (no TensorFlow)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tagger.errors import DecodeError
from tagger.train import cache as cache_module
from tagger.train.cache import FeatureCache, extract
from tagger.train.datasets import scan
from tagger.train.synthetic import render, write_dataset
from tests.train.clips import PARAMS


def test_cache_second_run_decodes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dataset(tmp_path / "data", genres=["drone", "techno"], clips_per_genre=2, seconds=1.0, sample_rate=16000)
    (tmp_path / "data" / "drone" / "broken.wav").write_bytes(b"not audio at all")
    dataset = scan(tmp_path / "data")

    first = FeatureCache(tmp_path / "cache")
    features, failed = extract(dataset, PARAMS, first)
    assert (first.stats.decoded, first.stats.hits) == (5, 0)
    assert list(failed) == ["drone/broken"]

    def no_decoding(*_args: object, **_kwargs: object) -> np.ndarray:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(cache_module, "decode", no_decoding)
    second = FeatureCache(tmp_path / "cache")
    again, failed_again = extract(dataset, PARAMS.with_normalisation(-30.0, 12.0), second)  # normalisation: same entry
    assert (second.stats.decoded, second.stats.hits, second.stats.failed) == (0, 4, 1)
    assert failed_again.keys() == failed.keys()
    for index, value in features.items():
        np.testing.assert_array_equal(again[index], value)

    other = FeatureCache(tmp_path / "cache")
    with pytest.raises(AssertionError, match="cache should have answered"):
        other.log_mel(dataset.clips[0].path, dataclasses.replace(PARAMS, n_mels=32))


def test_cache_notices_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "a.00000.wav"
    path.parent.mkdir()
    soundfile.write(path, render("drone", 1.0, 16000, 0), 16000)
    cache = FeatureCache(tmp_path / "cache")
    cache.log_mel(path, PARAMS)
    soundfile.write(path, render("drone", 2.0, 16000, 0), 16000)
    longer = cache.log_mel(path, PARAMS)
    assert cache.stats.decoded == 2
    assert len(longer) > 60


def test_broken_file_raises_decode_error_without_cache(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF")
    with pytest.raises(DecodeError):
        FeatureCache(None).log_mel(bad, PARAMS)
