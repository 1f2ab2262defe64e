"""Dataset scanning: any folder-per-genre layout, label order, fingerprints (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.train.datasets import scan
from tests.train.clips import gtzan_like, touch_audio


def test_scan_reads_any_folder_per_genre_layout(tmp_path: Path) -> None:
    touch_audio(tmp_path / "blues" / "blues.00000.wav")
    touch_audio(tmp_path / "blues" / "blues.00001.flac")
    touch_audio(tmp_path / "jazz" / "live" / "set one.ogg")  # nested, any name
    touch_audio(tmp_path / "jazz" / ".hidden.wav")
    (tmp_path / "jazz" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    touch_audio(tmp_path / ".trash" / "x.wav")

    dataset = scan(tmp_path)

    assert dataset.genres == ("blues", "jazz")
    assert [c.key for c in dataset.clips] == ["blues/blues.00000", "blues/blues.00001", "jazz/set one"]
    assert dataset.labels() == [0, 0, 1]
    assert dataset.counts() == {"blues": 2, "jazz": 1}


def test_scan_label_order_and_duplicate_keys(tmp_path: Path) -> None:
    touch_audio(tmp_path / "rock" / "rock.00000.flac")
    touch_audio(tmp_path / "rock" / "rock.00000.wav")  # same clip, other format: counted once
    touch_audio(tmp_path / "pop" / "pop.00000.wav")

    dataset = scan(tmp_path, genres=["rock", "pop"])

    assert dataset.genres == ("rock", "pop")
    assert len(dataset.clips) == 2
    assert dataset.labels() == [1, 0]  # clips sorted by key, labels in the given order
    with pytest.raises(FileNotFoundError):
        scan(tmp_path, genres=["rock", "metal"])


def test_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    gtzan_like(tmp_path, {"a": 2, "b": 2})
    first = scan(tmp_path).fingerprint()
    assert first == scan(tmp_path).fingerprint()
    touch_audio(tmp_path / "b" / "b.00009.wav")
    assert scan(tmp_path).fingerprint() != first
