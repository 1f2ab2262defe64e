"""The second-backbone check: MTT_musicnn's outputs on the shipped model's windows, appended, never shipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.model import load_card
from tagger.train.musicnn import pretrained
from tagger.train.musicnn.genres.labels import LabelledClip
from tagger.train.musicnn.genres.outputs import load_or_compute
from tagger.train.musicnn.genres.run import GenreOptions, run
from tagger.train.musicnn.genres.second_backbone import second_outputs, with_second
from tests.audio_factory import make_track
from tests.train.musicnn.test_port import _wheel


def test_the_second_backbones_columns_are_appended_window_by_window() -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    second = [np.full((3, 2), 7.0), np.full((1, 2), 9.0)]  # clip 0: 3 windows, clip 1: 1 window
    joined = with_second(x, second)
    assert joined.shape == (4, 5)
    assert np.array_equal(joined[:, :3], x)
    assert joined[:, 3:].tolist() == [[7, 7], [7, 7], [7, 7], [9, 9]]
    with pytest.raises(ValueError, match="3 second-backbone windows for 4 windows"):
        with_second(x, second[:1])


def test_a_head_over_the_second_backbone_is_never_shipped(tmp_path: Path) -> None:
    options = GenreOptions(tmp_path, tmp_path, tmp_path / "out", tmp_path, ship=True, second_backbone=True)
    with pytest.raises(ValueError, match="cannot be shipped"):
        run(options)
    assert not (tmp_path / "out").exists()  # refused before anything was read or written


@pytest.mark.train
def test_mtt_outputs_come_from_the_windows_of_the_shipped_models_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorflow")
    wheel = _wheel()
    if wheel is None:
        pytest.skip("musicnn wheel not found and not downloadable")
    monkeypatch.setenv(pretrained.ENV_DIR, str(wheel))
    monkeypatch.setattr(pretrained, "cache_dir", lambda: tmp_path / "checkpoints")
    track = make_track(tmp_path / "a.flac", "techno", seconds=20.0)
    clip = LabelledClip(track, "gtzan", "g", ("disco",), frozenset(), ())
    card = load_card("musicnn")
    shipped = load_or_compute([track], tmp_path / "outputs", "spread", "musicnn")
    found = second_outputs([clip], shipped, card.features, tmp_path / "outputs")
    assert found[0].shape == (len(shipped[0]["starts"]), 250) and len(shipped[0]["starts"]) == 4
    taggram = found[0][:, 200:]
    assert np.all((taggram >= 0) & (taggram <= 1))  # MTT's sigmoid tags
    assert not np.allclose(found[0][:, :200], shipped[0]["embedding"], atol=1e-2)  # another network's embedding
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["MTT_musicnn"]  # only its files
    (entry,) = (tmp_path / "outputs" / "MTT_musicnn").iterdir()
    stamp = entry.stat().st_mtime_ns
    again = second_outputs([clip], shipped, card.features, tmp_path / "outputs")
    assert entry.stat().st_mtime_ns == stamp and np.array_equal(again[0], found[0])  # read back, not recomputed
