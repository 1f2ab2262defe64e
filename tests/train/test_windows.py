"""Training windows: what the trainer sees is what the tagger computes (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from tagger.audio import read_segments
from tagger.features import window_from_segment, window_samples, window_starts
from tagger.train.cache import FeatureCache, extract
from tagger.train.datasets import scan
from tagger.train.synthetic import write_dataset
from tagger.train.windows import make_windows, measure_normalisation
from tests.train.clips import PARAMS


def test_training_windows_equal_the_taggers_windows(tmp_path: Path) -> None:
    write_dataset(tmp_path, genres=["chimes"], clips_per_genre=1, seconds=3.0, sample_rate=16000)
    dataset = scan(tmp_path)
    features, _ = extract(dataset, PARAMS, FeatureCache(None))
    mean, std = measure_normalisation(list(features.values()))
    params = PARAMS.with_normalisation(mean, std)
    windows = make_windows(features, [0], dataset.labels(), params)

    path = dataset.clips[0].path
    total = soundfile.info(path).frames
    starts = window_starts(total, params)
    tagger_windows = [
        window_from_segment(segment, params)
        for segment in read_segments(path, params.sample_rate, starts, window_samples(params))
    ]
    assert len(windows) == len(tagger_windows) == len(starts)
    np.testing.assert_allclose(windows.windows, np.stack(tagger_windows), atol=1e-3)
    assert set(windows.tracks.tolist()) == {0}
