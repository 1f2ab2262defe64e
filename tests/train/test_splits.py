"""Train / validation / test splits: random, fault-filtered lists, repeated k-fold (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.train.datasets import scan
from tagger.train.splits import fault_filtered, random_split, read_list, repeated_kfold
from tests.train.clips import gtzan_like


def test_random_split_is_stratified_disjoint_and_seeded(tmp_path: Path) -> None:
    gtzan_like(tmp_path, {"a": 10, "b": 20, "c": 5})
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
    gtzan_like(data, {"a": 5, "b": 4})  # a.00004 is in no list; z/*, b.00007 are not in the data
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
    gtzan_like(tmp_path, {"a": 6, "b": 12, "c": 5})
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
