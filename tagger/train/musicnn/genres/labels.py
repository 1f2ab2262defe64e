"""The ``genres`` vocabulary and how each data set's labels map onto it.

A clip's label for a vocabulary genre is positive (1), negative (0) or unknown (-1). Unknowns
come from *partial* labels: AllMusic's ``Pop/Rock`` says "one of Pop, Rock, Metal, Punk" and
not which, so the clip is positive for that union and unknown for each member; the head's
training (:mod:`tagger.train.musicnn.genres.head`) lets GTZAN's separate rock/pop/metal clips and the MSD
taggram decide between the members. GTZAN ``disco`` is treated the same way ("one of Pop, R&B,
Electronic"): disco is filed under pop, R&B and dance by AllMusic and last.fm alike, and the
vocabulary has no Disco genre.

AllMusic genres with no vocabulary genre (International, Vocal, Avant-Garde, Comedy/Spoken,
Holiday, Religious, Children's) carry no positive label: a clip with only those is negative
for every genre (AllMusic lists every top-level genre it files an artist under, so an absent
genre is evidence against it), which is what teaches the head to abstain on them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.train.splits import LISTS_DIR, read_list

# Label -> text written into files (the labels are the texts).
GENRES: tuple[str, ...] = (
    "Blues", "Classical", "Country", "Electronic", "Folk", "Hip-Hop", "Jazz", "Latin", "Metal", "Pop", "Punk",
    "R&B", "Reggae", "Rock",
)  # fmt: skip
# Tried and left out on evidence (first grouped CV on 263 AllMusic + 122 GTZAN clips, multi-label F1):
# New Age 0.00 (6 clips), Stage & Screen as Soundtrack 0.00 (7), Easy Listening 0.08 (9).

POP_ROCK: tuple[str, ...] = ("Pop", "Rock", "Metal", "Punk")
DISCO: tuple[str, ...] = ("Pop", "R&B", "Electronic")

ALLMUSIC_TO_GENRE: dict[str, str] = {
    "Blues": "Blues",
    "Classical": "Classical",
    "Country": "Country",
    "Electronic": "Electronic",
    "Folk": "Folk",
    "Rap": "Hip-Hop",
    "Jazz": "Jazz",
    "Latin": "Latin",
    "R&B": "R&B",  # AllMusic's R&B includes soul and funk
    "Reggae": "Reggae",
}
ALLMUSIC_PARTIAL: dict[str, tuple[str, ...]] = {"Pop/Rock": POP_ROCK}
ALLMUSIC_UNMAPPED: tuple[str, ...] = (
    "International", "Vocal", "Avant-Garde", "Comedy/Spoken", "Holiday", "Religious", "Children's", "New Age",
    "Stage & Screen", "Easy Listening",
)  # fmt: skip

GTZAN_TO_GENRE: dict[str, str] = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "hiphop": "Hip-Hop", "jazz": "Jazz",
    "metal": "Metal", "pop": "Pop", "reggae": "Reggae", "rock": "Rock",
}  # fmt: skip
GTZAN_PARTIAL: dict[str, tuple[str, ...]] = {"disco": DISCO}

# The MSD tags that speak for each genre: the prior that starts the partial labels' EM.
GENRE_MSD_TAGS: dict[str, tuple[str, ...]] = {
    "Pop": ("pop", "indie pop"),
    "Rock": ("rock", "classic rock", "alternative rock", "indie rock", "hard rock", "Progressive rock"),
    "Metal": ("metal", "heavy metal"),
    "Punk": ("punk",),
    "R&B": ("soul", "rnb", "funk"),
    "Electronic": ("electronic", "electronica", "dance", "electro", "House"),
}


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    dataset: str  # "allmusic-4q" | "gtzan"
    group: str  # artist-grouping key for every split
    source_labels: tuple[str, ...]  # the data set's own genres
    positives: frozenset[str]
    partials: tuple[tuple[str, ...], ...]  # each: "at least one of these"


def allmusic_clips(root: Path) -> list[LabelledClip]:
    clips = []
    with open(root / "metadata.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            source = tuple(g.strip() for g in row["allmusic_genres"].split(";") if g.strip())
            unknown = [g for g in source if g not in ALLMUSIC_TO_GENRE and g not in ALLMUSIC_PARTIAL]
            unknown = [g for g in unknown if g not in ALLMUSIC_UNMAPPED]
            if unknown:
                raise ValueError(f"{row['clip']}: AllMusic genre(s) with no mapping: {unknown}")
            clips.append(
                LabelledClip(
                    path=root / row["clip"],
                    dataset="allmusic-4q",
                    group="artist:" + row["artist"].strip().casefold(),
                    source_labels=source,
                    positives=frozenset(ALLMUSIC_TO_GENRE[g] for g in source if g in ALLMUSIC_TO_GENRE),
                    partials=tuple(ALLMUSIC_PARTIAL[g] for g in source if g in ALLMUSIC_PARTIAL),
                )
            )
    return clips


def gtzan_groups(lists_dir: Path = LISTS_DIR) -> dict[str, str]:
    """``genre/genre.NNNNN`` -> its fault-filtered list: the lists keep GTZAN's artists apart."""
    membership: dict[str, str] = {}
    for part in ("train", "valid", "test"):
        for name in read_list(lists_dir / f"fault_filtered_{part}.txt"):
            membership[name] = part
    return membership


def gtzan_clips(root: Path, paths: Sequence[Path] | None = None) -> list[LabelledClip]:
    """GTZAN clips grouped by genre + fault-filtered list (no artist column; the lists are artist-disjoint).

    Clips in no list (replicas, mislabelings the split leaves out) are grouped by genre and index block
    of 25, an approximation: GTZAN orders a genre's clips roughly by artist.
    """
    membership = gtzan_groups()
    clips = []
    for path in paths if paths is not None else sorted(root.glob("*/*.*")):
        genre = path.parent.name
        name = f"{genre}/{path.stem}"
        index = int(path.stem.split(".")[-1])
        part = membership.get(name, f"block{index // 25}")
        positive = GTZAN_TO_GENRE.get(genre)
        clips.append(
            LabelledClip(
                path=path,
                dataset="gtzan",
                group=f"gtzan:{genre}:{part}",
                source_labels=(genre,),
                positives=frozenset([positive] if positive else []),
                partials=(GTZAN_PARTIAL[genre],) if genre in GTZAN_PARTIAL else (),
            )
        )
    return clips


def label_matrix(clips: Sequence[LabelledClip], genres: Sequence[str] = GENRES) -> np.ndarray:
    """``(clips, genres)`` of 1 (positive), 0 (negative), -1 (unknown: a member of a partial label)."""
    labels = np.zeros((len(clips), len(genres)), np.int8)
    for row, clip in enumerate(clips):
        for column, genre in enumerate(genres):
            if genre in clip.positives:
                labels[row, column] = 1
            elif any(genre in partial for partial in clip.partials):
                labels[row, column] = -1
    return labels
