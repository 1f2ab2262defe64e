"""A model card with a mood head on the tiny fixture model, for tests of anything that shows or writes moods.

The head is a softmax linear head over the tiny model's own genre output (named ``taggram`` here, as
musicnn's card names its tag scores): each synthetic genre maps to one quadrant, so a generated track's
mood is known in advance (``GENRE_MOODS``) and tracks of different genres get different moods.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tagger.model import ModelCard
from tests.conftest import TINY_CARD

QUADRANT_NAMES = {"Q1": "Happy", "Q2": "Aggressive", "Q3": "Sad", "Q4": "Relaxed"}
# The tiny model's genres (its ``synthetic`` head, in order) -> the quadrant the mood head gives them.
GENRE_QUADRANTS = {"drone": "Q3", "techno": "Q2", "chimes": "Q1", "breaks": "Q1", "organ": "Q4"}
GENRE_MOODS = {genre: QUADRANT_NAMES[q] for genre, q in GENRE_QUADRANTS.items()}
MOOD_HEAD = "moods"


def mood_card_path(folder: Path, gain: float = 4.0, without_mood_head: bool = False, **head: Any) -> Path:
    """Write ``folder/mood-card.json``: the tiny card plus the mood head ``moods`` (its card's ``mood_head``).

    A track whose genre the tiny model hears with probability ~1 scores ``e^gain / (e^gain + 3)`` in its
    genre's quadrant (0.948 for the default 4); ``head`` overrides the head's keys (``abstain_below=0.99``).
    ``without_mood_head``: the same card without the head, for comparisons.
    """
    data = json.loads(TINY_CARD.read_text())
    data["model_file"] = str((TINY_CARD.parent / data["model_file"]).resolve())
    data["taggram_output"] = data["heads"]["synthetic"]["output"]
    genres = data["heads"]["synthetic"]["labels"]
    quadrants = list(QUADRANT_NAMES)
    weights = [[gain if GENRE_QUADRANTS[genre] == q else 0.0 for q in quadrants] for genre in genres]
    if not without_mood_head:
        data["heads"][MOOD_HEAD] = {
            "kind": "linear",
            "task": "multiclass",
            "role": "mood",
            "activation": "softmax",
            "inputs": ["taggram"],
            "labels": quadrants,
            "tag_names": QUADRANT_NAMES,
            "weights": weights,
            "bias": [0.0] * len(quadrants),
        } | head
        data["mood_head"] = MOOD_HEAD
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("card-without-moods.json" if without_mood_head else "mood-card.json")
    path.write_text(json.dumps(data))
    return path


def mood_card(folder: Path, gain: float = 4.0, **head: Any) -> ModelCard:
    """The loaded card of :func:`mood_card_path`."""
    return ModelCard.load(mood_card_path(folder, gain, **head))
