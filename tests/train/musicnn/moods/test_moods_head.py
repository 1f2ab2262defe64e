"""The moods head's training rules on synthetic window features: the folded weights, artist-grouped folds, the
abstain choice, the scores, and shipping into a card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tagger.model import MODELS_DIR, Head, ModelCard
from tagger.moods import QUADRANTS
from tagger.train.card import card_text
from tagger.train.musicnn.genres.cv import choose_abstain
from tagger.train.musicnn.genres.labels import LabelledClip
from tagger.train.musicnn.moods.cv import (
    CVResult,
    MoodData,
    cross_validate,
    fit_moods,
    head_dict,
    precision_coverage,
    runtime_head,
    sign_accuracy,
    summarise,
)
from tagger.train.musicnn.moods.labels import MoodClip, mood_clips, mood_words
from tagger.train.musicnn.moods.run import SHIPPED_KEYS, MoodOptions, run, ship

WINDOWS = 4


def synthetic(clips: int = 120, artists: int = 40, signal: float = 2.0, seed: int = 0) -> MoodData:
    """Clips of 4 windows: a 200-d "embedding" and 50-d "taggram" on very different scales and offsets, the
    quadrant shifting a few columns, and artists sharing an offset of their own (what grouped folds keep apart)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, clips)
    artist = np.arange(clips) % artists
    artist_offset = rng.normal(0, 1, (artists, 250))
    rows = np.repeat(np.arange(clips), WINDOWS)
    x = rng.normal(0, 1, (len(rows), 250)) + artist_offset[artist[rows]] * 0.5
    x[:, :4] += signal * np.eye(4)[labels[rows]]
    scale = np.concatenate([np.full(200, 30.0), np.full(50, 0.01)])
    x = x * scale + np.concatenate([np.full(200, 5.0), np.full(50, 0.2)])
    clip = [
        LabelledClip(Path(f"c{i}.opus"), "allmusic-4q", f"artist:a{a}", (), frozenset(), ())
        for i, a in enumerate(artist)
    ]
    mood = [MoodClip(c, int(q), ()) for c, q in zip(clip, labels, strict=True)]
    return MoodData(mood, x[:, :200], x[:, 200:], rows, labels)


def test_the_folded_weights_give_the_standardised_fits_scores_through_the_runtime_head() -> None:
    data = synthetic()
    indices = np.arange(len(data.clips))
    fitted = fit_moods(data, indices, c=0.1)
    table = data.table(indices)
    expected = fitted.predict_proba(table)  # the standardised fit: ((x - mean) / std) @ coef.T + intercept
    head = runtime_head(fitted)
    assert head.activation == "softmax" and head.role == "mood" and head.labels == QUADRANTS
    raw = np.concatenate([table.blocks["embedding"], table.blocks["taggram"]], axis=1)
    got = head.linear_probabilities(raw)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert (got.argmax(axis=1) == table.labels).mean() > 0.9  # it learned the quadrants
    # The folding is what makes them equal: the standardised weights on raw features score otherwise.
    unfolded = Head.from_dict("x", head_dict(fitted) | {"weights": fitted.coef.T.tolist(), "bias": fitted.intercept})
    assert np.abs(unfolded.linear_probabilities(raw) - expected).max() > 0.1


def test_cross_validation_folds_never_split_an_artist_and_score_held_out_clips() -> None:
    data = synthetic(clips=160, artists=40, signal=3.0)
    result = cross_validate(data, folds=4, repeats=2, c_grid=(0.1,), inner_folds=2, target_precision=0.8)
    for folds in result.folds:
        assert sorted(np.concatenate(folds).tolist()) == list(range(len(data.clips)))
        artists = [{data.groups[i] for i in fold} for fold in folds]
        assert all(not (a & b) for n, a in enumerate(artists) for b in artists[n + 1 :])
    summary = summarise(data, result)
    assert summary["macro_f1"]["mean"] > 0.9 and summary["accuracy"]["mean"] > 0.9
    assert len(summary["folds"]) == 8 and np.sum(summary["confusion"]["counts"]) == 2 * len(data.clips)


def test_held_out_scores_are_at_chance_when_the_quadrant_is_not_in_the_features() -> None:
    data = synthetic(clips=160, artists=40, signal=0.0)
    summary = summarise(data, cross_validate(data, folds=4, repeats=1, c_grid=(0.1,), inner_folds=2))
    assert summary["accuracy"]["mean"] < 0.45  # an artist leaking across folds would not lift this: no signal


def test_the_abstain_cut_off_is_the_lowest_reaching_the_target_and_each_fold_is_scored_at_its_own() -> None:
    true = np.array([0, 1, 2, 3])
    scores = np.array([[0.9, 0.1, 0, 0], [0.7, 0.3, 0, 0], [0, 0, 0.5, 0.5], [0.4, 0.3, 0.2, 0.1]])
    curve = precision_coverage(scores, true, np.array([0.3, 0.45, 0.6, 0.8]))
    assert curve == [(0.3, 0.5, 1.0), (0.45, pytest.approx(2 / 3), 0.75), (0.6, 0.5, 0.5), (0.8, 1.0, 0.25)]
    assert choose_abstain(curve, 0.6) == 0.45  # the lowest reaching it, though 0.6 falls back below it
    assert choose_abstain(curve, 0.75) == 0.8 and choose_abstain(curve, 0.4) == 0.3
    # Folds {0, 1} (cut-off 0.8: only clip 0 written, right) and {2, 3} (cut-off 0.3: both written, one right).
    data = synthetic(clips=4, artists=4)
    result = CVResult([scores], [np.array([0.8, 0.8, 0.3, 0.3])], [[np.array([0, 1]), np.array([2, 3])]])
    data.labels = true
    written = summarise(data, result)["written"]
    assert written["precision"]["mean"] == pytest.approx(0.75) and written["coverage"]["mean"] == pytest.approx(0.75)


def test_axis_signs_follow_the_quadrants() -> None:
    true = np.array([0, 1, 2, 3])
    right = np.eye(4) * 0.7 + 0.075
    assert sign_accuracy(right, true) == {"valence": 1.0, "arousal": 1.0}
    flipped = right[[1, 0, 3, 2]]  # Q2 for Q1 and so on: the arousal sign stays right, valence flips
    assert sign_accuracy(flipped, true) == {"valence": 0.0, "arousal": 1.0}


def test_mood_clips_read_the_quadrant_words_and_artist(tmp_path: Path) -> None:
    header = "clip,artist,title,quadrant,allmusic_genres,allmusic_moods\n"
    (tmp_path / "metadata.csv").write_text(
        header + "clips/a.opus,Band,A,Q2,Pop/Rock,Angry; Hostile\n"
        "clips/b.opus,band ,B,Q2,Rap,Angry\nclips/c.opus,Duo,C,Q4,Jazz,Calm; Angry\n"
    )
    clips = mood_clips(tmp_path)
    assert [c.quadrant for c in clips] == [1, 1, 3] and clips[0].words == ("Angry", "Hostile")
    assert clips[0].clip.group == clips[1].clip.group != clips[2].clip.group
    words = mood_words(clips)
    assert words["Q2"][0] == {"word": "Angry", "clips": 2, "share_in_quadrant": 0.67} and words["Q1"] == []
    (tmp_path / "metadata.csv").write_text(header + "clips/a.opus,Band,A,Q5,Jazz,Calm\n")
    with pytest.raises(ValueError, match="quadrant 'Q5' is not one of Q1, Q2, Q3, Q4"):
        mood_clips(tmp_path)


def without_moods(card: dict) -> dict:
    card = json.loads(json.dumps(card))
    for key in SHIPPED_KEYS:
        parent, _, name = key.rpartition(".")
        (card[parent] if parent else card).pop(name, None)
    return card


def test_ship_adds_only_the_mood_keys_and_leaves_every_other_byte_and_the_model_file(tmp_path: Path) -> None:
    before = without_moods(json.loads((MODELS_DIR / "musicnn.json").read_text()))
    original = card_text(before)
    path = tmp_path / "musicnn.json"
    path.write_text(original)
    model = tmp_path / before["model_file"]
    model.write_bytes(b"not touched")
    head = head_dict(fit_moods(synthetic(), np.arange(120), c=0.1), abstain_below=0.5)
    ship(path, head, {"macro_f1": 0.7})
    shipped = json.loads(path.read_text())
    assert without_moods(shipped) == before
    assert card_text(without_moods(shipped)) == original  # byte for byte, weights' layout included
    assert shipped["mood_head"] == "moods" and shipped["metrics"]["moods"] == {"macro_f1": 0.7}
    assert set(shipped) - set(before) == {"mood_head", "reproduce_moods", "licence_moods"}
    card = ModelCard.load(path)
    assert card.mood_head == "moods" and card.heads["moods"].abstain_below == 0.5
    assert card.default_head == before["default_head"] and model.read_bytes() == b"not touched"
    text = path.read_text()
    ship(path, head, {"macro_f1": 0.7})  # shipping again replaces, never duplicates
    assert path.read_text() == text


def test_a_head_chosen_on_random_folds_is_never_shipped(tmp_path: Path) -> None:
    options = MoodOptions(allmusic=tmp_path, out=tmp_path / "out", cache_dir=tmp_path, ship=True, random_folds=True)
    with pytest.raises(ValueError, match="random folds is not shipped"):
        run(options)
    assert not (tmp_path / "out").exists()
