"""The genres head's training rules: label mapping with partial labels, grouped folds, thresholds, abstain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.train.musicnn.genres.cv import (
    best_threshold,
    choose_abstain,
    correct,
    group_folds,
    margin,
    precision_coverage,
)
from tagger.train.musicnn.genres.head import LinearGenres, TrainingSet, fit_genres, partial_shares
from tagger.train.musicnn.genres.labels import GENRES, POP_ROCK, LabelledClip, allmusic_clips, gtzan_clips, label_matrix


def test_allmusic_pop_rock_is_a_partial_label_and_rap_is_hip_hop(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text(
        "clip,artist,title,quadrant,allmusic_genres,allmusic_moods\n"
        "clips/a.opus,Band,A,Q1,Pop/Rock; R&B,x\n"
        "clips/b.opus,MC,B,Q2,Rap,x\n"
        "clips/c.opus,Choir,C,Q3,Vocal; Holiday,x\n"
    )
    clips = allmusic_clips(tmp_path)
    labels = label_matrix(clips)
    column = {g: i for i, g in enumerate(GENRES)}
    assert labels[0, column["R&B"]] == 1
    assert all(labels[0, column[g]] == -1 for g in POP_ROCK)  # unknown member, not a guess
    assert labels[0, column["Jazz"]] == 0
    assert labels[1, column["Hip-Hop"]] == 1 and (labels[1] == 1).sum() == 1
    assert (labels[2] == 0).all()  # only unmapped genres: negative for every genre
    assert correct("Metal", clips[0]) and correct("R&B", clips[0]) and not correct("Jazz", clips[0])
    assert clips[0].group == "artist:band"


def test_gtzan_groups_follow_the_fault_filtered_lists(tmp_path: Path) -> None:
    paths = [tmp_path / "blues" / "blues.00000.opus", tmp_path / "disco" / "disco.00003.opus"]
    clips = gtzan_clips(tmp_path, paths)
    assert clips[0].positives == {"Blues"} and clips[0].group.startswith("gtzan:blues:")
    assert clips[1].positives == frozenset() and clips[1].partials == (("Pop", "R&B", "Electronic"),)


def test_group_folds_never_split_a_group() -> None:
    groups = [f"g{i % 7}" for i in range(40)]
    folds = group_folds(groups, 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(40))
    for fold in folds:
        others = set(np.concatenate([f for f in folds if f is not fold]).tolist())
        assert not {groups[i] for i in fold} & {groups[i] for i in others}


def test_threshold_respects_the_overuse_cap() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    labels = np.array([1, 0, 1, 0, 1, 0, 1, -1])
    free = best_threshold(scores, labels, max_overuse=10.0)
    assert free < 0.4  # best F1 writes it down to the last positive (0.3): 7 tracks for 4 positives
    capped = best_threshold(scores, labels, max_overuse=1.5)
    assert (scores[labels >= 0] >= capped).sum() <= 6 and capped > free


def test_abstain_takes_the_lowest_cut_off_reaching_the_target() -> None:
    curve = [(0.5, 0.6, 1.0), (0.6, 0.79, 0.8), (0.7, 0.85, 0.5), (0.8, 0.9, 0.2)]
    assert choose_abstain(curve, 0.80) == 0.7
    assert choose_abstain(curve, 0.95) == 0.8  # unreachable: the most precise


def test_precision_coverage_counts_a_partial_member_as_right() -> None:
    clip = LabelledClip(Path("a"), "allmusic-4q", "a", ("Pop/Rock",), frozenset(), (POP_ROCK,))
    jazz = LabelledClip(Path("b"), "allmusic-4q", "b", ("Jazz",), frozenset({"Jazz"}), ())
    margins = np.full((2, len(GENRES)), 0.1)
    margins[0, GENRES.index("Metal")] = 0.9  # right: Metal is one of Pop/Rock
    margins[1, GENRES.index("Rock")] = 0.6  # wrong, and less sure
    rows = precision_coverage(margins, [clip, jazz], GENRES, np.array([0.5, 0.7]))
    assert rows[0][1:] == (0.5, 1.0) and rows[1][1:] == (1.0, 0.5)


def test_margin_puts_each_threshold_at_one_half() -> None:
    scores = np.array([[0.2, 0.9], [0.3, 0.5]])
    moved = margin(scores, np.array([0.2, 0.5]))
    expected = 1 / (1 + np.exp(-(np.log(0.3 / 0.7) - np.log(0.2 / 0.8))))
    np.testing.assert_allclose(moved[:, 0], [0.5, expected], rtol=1e-6)
    np.testing.assert_allclose(moved[:, 1], scores[:, 1], rtol=1e-6)


def test_partial_shares_sum_to_one_within_the_union() -> None:
    scores = np.array([[0.6, 0.2, 0.2, 0.0]])
    shares = partial_shares(scores, [(("a", "b"),)], ["a", "b", "c", "d"])
    np.testing.assert_allclose(shares, [[0.75, 0.25, 0.0, 0.0]])


def test_the_partial_label_is_resolved_by_the_known_examples() -> None:
    """Clips labelled only "a or b" take the member their features match, learnt from the clips that say which."""
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0.0], [0.0, 3.0]])
    known = rng.integers(0, 2, 60)
    hidden = rng.integers(0, 2, 60)
    x = np.concatenate([centres[known], centres[hidden]]) + rng.normal(scale=0.5, size=(120, 2))
    labels = np.concatenate([np.eye(2, dtype=np.int8)[known], -np.ones((60, 2), np.int8)])
    partials = [()] * 60 + [(("a", "b"),)] * 60
    data = TrainingSet(x=x, clip=np.arange(120), labels=labels, partials=partials, taggram_means=np.zeros((120, 50)))
    head: LinearGenres = fit_genres(data, ["a", "b"], c=1.0)
    predicted = head.probabilities(x[60:]).argmax(axis=1)
    assert (predicted == hidden).mean() > 0.9
