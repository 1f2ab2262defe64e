from __future__ import annotations

import numpy as np
import pytest

from tagger.aggregate import aggregate
from tagger.model import Head
from tagger.policy import Policy, decide

HEAD = Head("gtzan", ("blues", "jazz", "rock"), tag_names={"jazz": "Jazz"})


def test_track_genre_is_argmax_of_mean_window_probabilities() -> None:
    windows = np.array([[0.6, 0.3, 0.1], [0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])
    genres = aggregate(windows, HEAD, top_k=2)
    assert genres.top.label == "jazz"  # mean 0.433 beats blues 0.267 although window 1 votes blues
    assert genres.top.genre == "Jazz"
    assert [s.label for s in genres.ranked] == ["jazz", "rock"]
    assert genres.top.confidence == pytest.approx(1.3 / 3)


def test_min_confidence_records_but_does_not_choose() -> None:
    genres = aggregate(np.array([[0.4, 0.35, 0.25]]), HEAD, top_k=1, min_confidence=0.5)
    assert not genres.confident
    assert genres.chosen == ()
    assert genres.top.label == "blues"


def test_multilabel_uses_per_label_thresholds_and_top_k() -> None:
    head = Head("msd", ("rock", "pop", "jazz"), task="multilabel", thresholds={"rock": 0.3, "pop": 0.6, "jazz": 0.1})
    genres = aggregate(np.array([[0.5, 0.5, 0.2]]), head, top_k=5)
    assert genres.chosen == ("rock", "jazz")  # pop under its own threshold
    assert aggregate(np.array([[0.5, 0.5, 0.2]]), head, top_k=1).chosen == ("rock",)


@pytest.mark.parametrize(
    ("existing", "proposed", "policy", "ours", "expected"),
    [
        ([], ["Jazz"], Policy.KEEP, False, ["Jazz"]),
        (["Rock"], ["Jazz"], Policy.KEEP, False, None),
        (["Rock"], ["Jazz"], Policy.KEEP, True, ["Jazz"]),  # our own earlier write is replaced
        (["Rock"], ["Jazz"], Policy.OVERWRITE, False, ["Jazz"]),
        (["Rock"], ["jazz", "rock"], Policy.MERGE, False, ["Rock", "jazz"]),
        (["Jazz"], ["Jazz"], Policy.OVERWRITE, False, None),  # nothing to change
        ([], [], Policy.OVERWRITE, False, None),
    ],
)
def test_policies(
    existing: list[str], proposed: list[str], policy: Policy, ours: bool, expected: list[str] | None
) -> None:
    assert decide(existing, proposed, policy, ours) == expected


def test_a_multiclass_head_abstains_below_its_threshold() -> None:
    head = Head(name="moods", labels=("Q1", "Q2", "Q3", "Q4"), abstain_below=0.5)
    windows = np.array([[0.45, 0.35, 0.1, 0.1], [0.35, 0.45, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1]])  # Q1 0.467
    unsure = aggregate(windows, head, top_k=1)
    assert unsure.chosen == () and unsure.abstained and not unsure.confident
    assert [s.label for s in unsure.ranked] == ["Q1"]  # the candidate is kept
    sure = aggregate(windows[2:], head, top_k=1)
    assert sure.chosen == ("Q1",) and not sure.abstained
