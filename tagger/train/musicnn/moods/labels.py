"""AllMusic-4Q's quadrants as mood labels, and the evidence for the names the quadrants are written as.

Each clip's quadrant is the data set's annotator-validated one (``quadrant`` column); its artist
group and path come from the genres room's clip reader, so both heads split the data the same way.
The names written into files keep the words other taggers write (Essentia's mood classifiers:
happy, aggressive, sad, relaxed, so a library tagged by both agrees) where AllMusic's editors'
words for the quadrant's clips carry that meaning; :func:`mood_words` counts those words per
quadrant and the card records the top ones beside the names.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.moods import QUADRANTS
from tagger.train.musicnn.genres.labels import LabelledClip, allmusic_clips

TAG_NAMES: dict[str, str] = {"Q1": "Happy", "Q2": "Aggressive", "Q3": "Sad", "Q4": "Relaxed"}
# Why each name, from the counts below (clips of the quadrant carrying the word / clips anywhere carrying it):
NAME_EVIDENCE: dict[str, str] = {
    "Q1": "Joyous, Happy, Cheerful lead; Happy is on 40 of its clips and 87% of the clips with Happy are Q1",
    "Q2": "Angry, Hostile, Fierce, Harsh, Nervous lead (AllMusic's own word Aggressive is on only 5 clips, all Q2); "
    "Aggressive is the word other taggers write for this energetic-negative corner",
    "Q3": "Sad is its most frequent word (60 clips, 94% of Sad's clips are Q3), then Gloomy and Bleak",
    "Q4": "Calm, Peaceful, Soothing lead; Relaxed is on 30 clips, every one Q4 (Calm, on 76, would be the "
    "alternative name)",
}


@dataclass(frozen=True)
class MoodClip:
    clip: LabelledClip  # path and artist group (as the genres head splits)
    quadrant: int  # index into QUADRANTS
    words: tuple[str, ...]  # AllMusic's mood words


def mood_clips(root: Path) -> list[MoodClip]:
    """Every clip of ``root/metadata.csv`` with its quadrant; an unknown quadrant is one clear error."""
    with open(root / "metadata.csv", newline="") as handle:
        rows = {str(root / row["clip"]): row for row in csv.DictReader(handle)}
    clips = []
    for clip in allmusic_clips(root):
        row = rows[str(clip.path)]
        quadrant = row["quadrant"].strip()
        if quadrant not in QUADRANTS:
            raise ValueError(f"{row['clip']}: quadrant {quadrant!r} is not one of {', '.join(QUADRANTS)}")
        words = tuple(w.strip() for w in row.get("allmusic_moods", "").split(";") if w.strip())
        clips.append(MoodClip(clip, QUADRANTS.index(quadrant), words))
    return clips


def mood_words(clips: Sequence[MoodClip], top: int = 8) -> dict[str, list[dict[str, Any]]]:
    """Per quadrant, its most frequent AllMusic mood words: clips of the quadrant carrying each, and the share of
    all clips carrying it that are of the quadrant (how specific the word is to it)."""
    anywhere: Counter[str] = Counter()
    per: dict[int, Counter[str]] = {q: Counter() for q in range(len(QUADRANTS))}
    for clip in clips:
        words = set(clip.words)
        anywhere.update(words)
        per[clip.quadrant].update(words)
    return {
        QUADRANTS[q]: [
            {"word": word, "clips": count, "share_in_quadrant": round(count / anywhere[word], 2)}
            for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        ]
        for q, counts in per.items()
    }
