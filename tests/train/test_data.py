"""Fast trainer tests that need no TensorFlow: dataset scanning, splits, feature cache, windows, scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tagger.audio import read_segments
from tagger.errors import DecodeError
from tagger.features import FeatureParams, window_from_segment, window_samples, window_starts
from tagger.train import cache as cache_module
from tagger.train.cache import FeatureCache, extract
from tagger.train.datasets import scan
from tagger.train.evaluate import from_confusion, score, summarise
from tagger.train.splits import fault_filtered, random_split, read_list, repeated_kfold
from tagger.train.synthetic import render, write_dataset
from tagger.train.windows import make_windows, measure_normalisation

PARAMS = FeatureParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64, window_frames=32, window_hop_frames=32)


def _touch_audio(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def _gtzan_like(root: Path, counts: dict[str, int]) -> None:
    for genre, count in counts.items():
        for i in range(count):
            _touch_audio(root / genre / f"{genre}.{i:05d}.wav")


# --- dataset scanning ---------------------------------------------------------------------------


def test_scan_reads_any_folder_per_genre_layout(tmp_path: Path) -> None:
    _touch_audio(tmp_path / "blues" / "blues.00000.wav")
    _touch_audio(tmp_path / "blues" / "blues.00001.flac")
    _touch_audio(tmp_path / "jazz" / "live" / "set one.ogg")  # nested, any name
    _touch_audio(tmp_path / "jazz" / ".hidden.wav")
    (tmp_path / "jazz" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    _touch_audio(tmp_path / ".trash" / "x.wav")

    dataset = scan(tmp_path)

    assert dataset.genres == ("blues", "jazz")
    assert [c.key for c in dataset.clips] == ["blues/blues.00000", "blues/blues.00001", "jazz/set one"]
    assert dataset.labels() == [0, 0, 1]
    assert dataset.counts() == {"blues": 2, "jazz": 1}


def test_scan_label_order_and_duplicate_keys(tmp_path: Path) -> None:
    _touch_audio(tmp_path / "rock" / "rock.00000.flac")
    _touch_audio(tmp_path / "rock" / "rock.00000.wav")  # same clip, other format: counted once
    _touch_audio(tmp_path / "pop" / "pop.00000.wav")

    dataset = scan(tmp_path, genres=["rock", "pop"])

    assert dataset.genres == ("rock", "pop")
    assert len(dataset.clips) == 2
    assert dataset.labels() == [1, 0]  # clips sorted by key, labels in the given order
    with pytest.raises(FileNotFoundError):
        scan(tmp_path, genres=["rock", "metal"])


def test_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    _gtzan_like(tmp_path, {"a": 2, "b": 2})
    first = scan(tmp_path).fingerprint()
    assert first == scan(tmp_path).fingerprint()
    _touch_audio(tmp_path / "b" / "b.00009.wav")
    assert scan(tmp_path).fingerprint() != first


# --- splits -------------------------------------------------------------------------------------


def test_random_split_is_stratified_disjoint_and_seeded(tmp_path: Path) -> None:
    _gtzan_like(tmp_path, {"a": 10, "b": 20, "c": 5})
    dataset = scan(tmp_path)
    split = random_split(dataset, test_fraction=0.2, valid_fraction=0.1, seed=3)

    parts = [set(split.train), set(split.valid), set(split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(len(dataset.clips)))
    test_genres = [dataset.clips[i].genre for i in split.test]
    assert {g: test_genres.count(g) for g in "abc"} == {"a": 2, "b": 4, "c": 1}
    assert {dataset.clips[i].genre for i in split.valid} == {"a", "b", "c"}
    assert split == random_split(dataset, test_fraction=0.2, valid_fraction=0.1, seed=3)
    assert split.test != random_split(dataset, test_fraction=0.2, valid_fraction=0.1, seed=4).test


def test_fault_filtered_skips_and_counts_missing_clips(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "fault_filtered_train.txt").write_text("a/a.00000\na/a.00001\nb/b.00000\nb/b.00001\nz/z.00000\n")
    (lists / "fault_filtered_valid.txt").write_text("a/a.00002\nb/b.00002\n")
    (lists / "fault_filtered_test.txt").write_text("# comment\na/a.00003\nb/b.00003\nb/b.00007\n\n")
    data = tmp_path / "data"
    _gtzan_like(data, {"a": 5, "b": 4})  # a.00004 is in no list; z/*, b.00007 are not in the data
    dataset = scan(data)

    split = fault_filtered(dataset, lists_dir=lists)

    keys = lambda part: sorted(dataset.clips[i].key for i in part)  # noqa: E731
    assert keys(split.train) == ["a/a.00000", "a/a.00001", "b/b.00000", "b/b.00001"]
    assert keys(split.valid) == ["a/a.00002", "b/b.00002"]
    assert keys(split.test) == ["a/a.00003", "b/b.00003"]
    assert split.info["missing"] == {"train": 1, "valid": 0, "test": 1}
    assert split.info["present"] == {"train": 4, "valid": 2, "test": 2}
    assert split.info["listed"] == {"train": 5, "valid": 2, "test": 3}
    assert split.info["excluded_unlisted"] == 1

    merged = fault_filtered(dataset, lists_dir=lists, valid_from="train", valid_fraction=0.3)
    assert set(merged.train) | set(merged.valid) == set(split.train) | set(split.valid)
    assert not set(merged.train) & set(merged.valid)
    assert merged.test == split.test


def test_shipped_fault_filtered_lists() -> None:
    from tagger.train.splits import LISTS_DIR

    sizes = {p: len(read_list(LISTS_DIR / f"fault_filtered_{p}.txt")) for p in ("train", "valid", "test")}
    assert sizes == {"train": 443, "valid": 197, "test": 290}
    every = [k for p in sizes for k in read_list(LISTS_DIR / f"fault_filtered_{p}.txt")]
    assert len(set(every)) == 930


def test_repeated_kfold_tests_every_clip_once_per_repeat(tmp_path: Path) -> None:
    _gtzan_like(tmp_path, {"a": 6, "b": 12, "c": 5})
    dataset = scan(tmp_path)
    folds = list(repeated_kfold(dataset, folds=5, repeats=2, valid_fraction=0.2, seed=1))

    assert len(folds) == 10
    for repeat in (0, 1):
        tested = [i for f in folds if f.repeat == repeat for i in f.test]
        assert sorted(tested) == list(range(len(dataset.clips)))
    for fold in folds:
        parts = [set(fold.train), set(fold.valid), set(fold.test)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(parts[0] | parts[1] | parts[2]) == len(dataset.clips)
        assert {dataset.clips[i].genre for i in fold.test} == {"a", "b", "c"}  # stratified
    with pytest.raises(ValueError, match="at least 7"):
        list(repeated_kfold(dataset, folds=7))


# --- feature cache ------------------------------------------------------------------------------


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


# --- windows: what the trainer sees is what the tagger computes -----------------------------------


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


# --- scores -------------------------------------------------------------------------------------


def test_track_vote_is_the_mean_of_window_probabilities() -> None:
    from tagger.train.windows import WindowSet

    # Track 0 (true 0): windows say 1 weakly, then 0 strongly -> mean picks 0. Track 1 (true 1): picks 1.
    probabilities = np.array([[0.4, 0.6], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    data = WindowSet(np.zeros((3, 1, 1), np.float32), np.array([0, 0, 1]), np.array([0, 0, 1]))
    scores = score(probabilities, data, ("a", "b"))
    assert scores.track_accuracy == 1.0
    assert scores.window_accuracy == pytest.approx(2 / 3)
    assert scores.confusion == [[1, 0], [0, 1]]
    assert scores.macro["f1"] == 1.0

    summary = summarise([scores, scores], ("a", "b"))
    assert summary["macro"]["f1"] == {"mean": 1.0, "std": 0.0}
    assert summary["confusion"] == [[2, 0], [0, 2]]


def test_scores_from_confusion() -> None:
    per_genre, macro = from_confusion(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]), ("a", "b", "c"))
    assert set(per_genre) == {"a", "b"}  # neither true nor predicted: no row
    assert per_genre["a"]["precision"] == 1.0 and per_genre["a"]["recall"] == 0.75
    assert per_genre["b"]["precision"] == pytest.approx(2 / 3)
    assert macro["recall"] == pytest.approx((0.75 + 1.0) / 2)


def test_predicting_an_absent_genre_costs_macro_precision() -> None:
    from tagger.train.windows import WindowSet

    # Two tracks of genre a; one is called c, which has no test track.
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], dtype=np.float32)
    data = WindowSet(np.zeros((2, 1, 1), np.float32), np.array([0, 0]), np.array([0, 1]))
    scores = score(probabilities, data, ("a", "b", "c"))
    assert scores.macro["precision"] == pytest.approx((1.0 + 0.0) / 2)  # a and c; b neither true nor predicted
    assert scores.macro["recall"] == pytest.approx((0.5 + 0.0) / 2)
    per_genre, macro = from_confusion(np.array(scores.confusion), ("a", "b", "c"))
    assert set(per_genre) == {"a", "c"} and macro == pytest.approx(scores.macro)
