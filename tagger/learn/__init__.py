"""``tagger learn``: a genre head in the owner's own vocabulary, fit over stored embeddings.

The owner's genre tags (``Track.user_genres``: read at scan time, never the ones this tool
wrote) are the labels; the mean window embedding each scan stores (``Result.embedding``) is
the input. Nothing is decoded again, so learning on 10,000 tagged tracks takes seconds.
``field="mood"`` (``tagger learn --field mood``) does the same with the owner's MOOD values
(``Track.user_moods``) and saves a head of role ``mood``: a scan writes it into the MOOD field
(``mood_vocabulary = NAME``), and it is never a genre vocabulary.

Why this head:

* **Standardisation + one logistic regression per label (one-vs-rest).** A track can carry
  several genres (``Drone; Ambient``), so labels are independent yes/no questions. A linear
  model over a pretrained embedding is what few-shot transfer does well: little data, few
  parameters, convex fit (same result every run), and weights that fit in a JSON card (no
  pickle). Standardising first lets one regularisation strength suit every embedding dim.
* **Class-balanced.** A library has 2,000 rock tracks and 25 shoegaze tracks; without
  balancing the rare label's regression learns to say "no".
* **Thresholds per label chosen on held-out folds**, because a balanced logistic output is
  not a calibrated probability and the best cut-off differs per label.
* **Grouped cross-validation by what the files say** (:func:`~tagger.learn.collect.group_of`): album + album
  artist tags, else the artist tag, else the folder. Tracks of one album (or artist) sound
  alike and share a label; letting them straddle train and test would inflate every figure.
  A flat folder of tagged downloads is grouped by its tags; a ``Jazz/`` folder holding every
  Jazz track is grouped by the albums or artists inside it. The folder is only ever a group
  key: the features are the stored embeddings alone. The figures
  reported are cross-fitted: each fold is scored with thresholds chosen on the other folds'
  held-out predictions: the weights that score a track never saw it, and its threshold was
  chosen on other tracks' held-out scores.
  Folds also spread each label's groups (:func:`~tagger.learn.evaluate.grouped_folds`), so no label loses all its
  training examples in one fold.

Labels with too few tracks, or whose cross-validated F1 is under a floor, are reported and left
out: a head that guesses is worse than no tag. A label whose tracks all share one group (one
album, one artist, one untagged folder) cannot be tested honestly; the owner asked for it, so it
is still learned, its tracks split one by one, and its figure marked optimistic.

The rooms: :mod:`~tagger.learn.collect` (tagged tracks, embeddings, groups) -> :mod:`~tagger.learn.evaluate`
(grouped cross-validation, thresholds) over :mod:`~tagger.learn.fit` (the head) -> :mod:`~tagger.learn.card`
(figures, the saved card); :func:`learn_vocabulary` below runs them and refuses what cannot be learned.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagger.genres import GenreRules
from tagger.learn.card import LabelFigures, Learned, check_name, save_vocabulary
from tagger.learn.collect import LEVELS, UNGROUPED, collect
from tagger.learn.evaluate import cross_validate
from tagger.learn.fit import fit_head
from tagger.model import HeadRole, ModelCard
from tagger.store import Database
from tagger.walk import canonical_path

__all__ = [
    "DEFAULT_NAMES",
    "FIELDS",
    "LabelFigures",
    "Learned",
    "check_name",
    "field_role",
    "learn_vocabulary",
    "save_vocabulary",
]

#: The name saved under when none is given, per field: a mood vocabulary never lands on the genres' file.
DEFAULT_NAMES: dict[HeadRole, str] = {"genre": "mine", "mood": "mymoods"}
DEFAULT_NAME = DEFAULT_NAMES["genre"]
DEFAULT_MIN_TRACKS = 20
DEFAULT_F1_FLOOR = 0.5
MAX_FOLDS = 5
FIELDS: tuple[HeadRole, ...] = ("genre", "mood")  # the tag fields the database keeps per track (Track.user_*)


def field_role(field: str) -> HeadRole:
    """``"genre"`` or ``"mood"``: the tag field the labels come from is the saved head's role."""
    for role in FIELDS:
        if field == role:
            return role
    raise ValueError(f"field {field!r}: the database keeps only {', '.join(FIELDS)} per track")


def learn_vocabulary(
    db: Database,
    card: ModelCard,
    roots: Sequence[str | Path] = (),
    *,
    name: str | None = None,
    min_tracks: int = DEFAULT_MIN_TRACKS,
    f1_floor: float = DEFAULT_F1_FLOOR,
    field: str = "genre",
    rules: GenreRules | None = None,
) -> Learned:
    """Collect labels, cross-validate grouped by album/artist/folder, refuse what cannot be learned, fit the rest.

    ``field``: ``"genre"`` or ``"mood"``, the owner's tags the labels come from and the saved head's role
    (``rules``, the ``[genres]`` settings, apply to genres only). Writes nothing (``--dry-run`` is this alone).
    """
    role = field_role(field)
    if card.embedding_output is None:
        raise ValueError(f"model {card.model_id} has no embedding output: nothing to learn from")
    data = collect(db, card.model_id, roots, rules, role)
    learned = Learned(
        name=name or DEFAULT_NAMES[role],
        model_id=card.model_id,
        tag_field=role,
        min_tracks=min_tracks,
        f1_floor=f1_floor,
        labels=[],
        tracks=len(data.paths),
        untagged=data.untagged,
        no_embedding=data.no_embedding,
        folders=len(set(data.folders)),
        dims=int(data.embeddings.shape[1]) if len(data.paths) else 0,
        roots=[str(canonical_path(r)) for r in roots],
    )
    tracks_of: Counter[str] = Counter(label for labels in data.labels for label in labels)
    folders_of: dict[str, set[str]] = defaultdict(set)
    groups_of: dict[str, set[str]] = defaultdict(set)
    levels_of: dict[str, set[str]] = defaultdict(set)
    for labels, folder, group, level in zip(data.labels, data.folders, data.groups, data.levels, strict=True):
        for label in labels:
            folders_of[label].add(folder)
            groups_of[label].add(group)
            levels_of[label].add(level)
    groups = list(data.groups)
    for label in sorted(tracks_of, key=lambda k: (-tracks_of[k], k)):
        figures = LabelFigures(label, data.normaliser.spelling(label), tracks_of[label], len(folders_of[label]))
        figures.groups = len(groups_of[label])
        figures.grouping = "+".join(level for level in LEVELS if level in levels_of[label])
        if figures.tracks < min_tracks:
            figures.refused = (
                f"{figures.tracks} tracks (fewer than {min_tracks}): tag more tracks, or lower --min-tracks"
            )
        elif figures.groups < 2:
            # No grouping puts its tracks on both sides of a split: split them one by one instead.
            figures.optimistic = True
            figures.note = (
                f"untested: all {figures.tracks} tracks share one {figures.grouping}, so its figure comes from "
                f"splitting tracks of that {figures.grouping} and is optimistic (tag tracks of other albums or "
                "artists, or album/artist tags, for an honest figure)"
            )
            figures.grouping, figures.groups = UNGROUPED, figures.tracks
            for i, labels in enumerate(data.labels):
                if label in labels:
                    groups[i] = f"{UNGROUPED}\0{data.paths[i]}"
        elif figures.folders == 1 and all(
            label in labels
            for labels, folder in zip(data.labels, data.folders, strict=True)
            if folder in folders_of[label]
        ):
            # The genre is the folder (every Jazz track in Jazz/, nothing else there): say what was tested.
            figures.note = (
                f"all its tracks are in {next(iter(folders_of[label]))}, and only they: the figure is about "
                f"telling its {figures.grouping} groups inside that folder apart from the rest, not about the folder"
            )
        learned.labels.append(figures)
    learned.groups = len(set(groups))
    learned.grouped_by = {level: n for level in LEVELS if (n := data.levels.count(level))}
    candidates = [f for f in learned.labels if f.learned]
    learned.folds = min(MAX_FOLDS, learned.groups)
    if not candidates or learned.folds < 2:
        if learned.folds < 2:
            for figures in candidates:
                figures.refused = "fewer than 2 tagged tracks in all: nothing to cross-validate (tag more tracks)"
        return learned
    x = data.embeddings.astype(np.float64)
    y = np.array([[f.label in labels for f in candidates] for labels in data.labels], dtype=np.int64)
    _, scores, thresholds = cross_validate(x, y, groups, learned.folds)
    for figures, (precision, recall, f1, spread), threshold in zip(candidates, scores, thresholds, strict=True):
        figures.precision, figures.recall, figures.f1 = round(precision, 4), round(recall, 4), round(f1, 4)
        figures.f1_spread, figures.threshold = round(spread, 4), round(float(threshold), 4)
        if f1 < f1_floor:
            figures.refused = (
                f"cross-validated F1 {f1:.2f} below the floor {f1_floor:.2f} (grouped by {figures.grouping}): "
                "tag more tracks, or lower --f1-floor"
            )
    kept = [j for j, figures in enumerate(candidates) if figures.learned]
    if kept:
        learned.head = fit_head(x, y[:, kept])
    return learned
