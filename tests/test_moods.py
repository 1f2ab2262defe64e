"""The valence/arousal rule over quadrant scores."""

from __future__ import annotations

import pytest

from tagger.moods import axes


def test_axes_are_the_mass_on_each_side() -> None:
    both = axes({"Q1": 0.7, "Q2": 0.1, "Q3": 0.1, "Q4": 0.1})
    assert both is not None
    assert both.valence == pytest.approx(0.6) and both.arousal == pytest.approx(0.6)
    calm_sad = axes({"Q1": 0.0, "Q2": 0.2, "Q3": 0.8, "Q4": 0.0})
    assert calm_sad is not None
    assert calm_sad.valence == pytest.approx(-1.0) and calm_sad.arousal == pytest.approx(-0.6)


def test_axes_need_every_quadrant() -> None:
    assert axes({"Q1": 0.5, "Q2": 0.5}) is None
    assert axes({"Happy": 1.0}) is None
