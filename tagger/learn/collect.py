"""The training set of ``tagger learn``: tagged tracks, their stored embeddings, and their CV groups."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import and_, select

from tagger.errors import TaggerError
from tagger.genres import GenreNormaliser, GenreRules
from tagger.model import HeadRole
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.embedding import embedding_from_bytes
from tagger.store.queries import is_latest_result
from tagger.tags.grouping import Grouping, read_grouping
from tagger.walk import canonical_path, is_under

LEVELS = ("album", "artist", "folder")  # cross-validation groups, best first
UNGROUPED = "track"  # a label's last resort: each track its own group (optimistic figures)


def group_of(path: str, grouping: Grouping) -> tuple[str, str]:
    """(level, group key) of one track: album + album artist, else artist, else its folder."""
    artist = (grouping.albumartist or grouping.artist).casefold()
    if grouping.album:
        return "album", f"album\0{artist}\0{grouping.album.casefold()}"
    if artist:
        return "artist", f"artist\0{artist}"
    return "folder", f"folder\0{os.path.dirname(path)}"


def _grouping_of(path: str) -> Grouping:
    try:
        return read_grouping(path)
    except (TaggerError, OSError):  # gone or unreadable since the scan: its folder still groups it
        return Grouping()


@dataclass
class TrainingSet:
    paths: list[str]
    folders: list[str]  # each track's folder
    embeddings: np.ndarray  # (tracks, dims) float32
    labels: list[list[str]]  # normalised keys per track
    normaliser: GenreNormaliser
    levels: list[str] = field(default_factory=list)  # each track's grouping level (LEVELS)
    groups: list[str] = field(default_factory=list)  # each track's group key
    untagged: int = 0
    no_embedding: int = 0


#: Where each role's labels come from: the owner's own values of that field, read at scan time (never ours).
OWNER_VALUES = {"genre": Track.user_genres, "mood": Track.user_moods}


def collect(
    db: Database,
    model_id: str,
    roots: Sequence[str | Path] = (),
    rules: GenreRules | None = None,
    role: HeadRole = "genre",
) -> TrainingSet:
    """Tracks under ``roots`` tagged in ``role``'s field, with their latest embedding from ``model_id``
    (others are refused); genres named through ``rules`` (the ``[genres.map]`` aliases), moods as spelled."""
    wanted = [canonical_path(root) for root in roots]
    latest = is_latest_result(model_id=model_id, with_embedding=True)
    query = (
        select(Track.path, OWNER_VALUES[role], Result.embedding)
        .outerjoin(Result, and_(Result.track_id == Track.id, latest))
        .where(Track.status != TrackStatus.GONE)
        .order_by(Track.path)
    )
    normaliser = GenreNormaliser(rules if role == "genre" else None, role)
    data = TrainingSet([], [], np.zeros((0, 0), np.float32), [], normaliser)
    vectors: list[np.ndarray] = []
    with db.session() as session:
        for path, owners, embedding in session.execute(query):
            if wanted and not is_under(path, wanted):
                continue
            labels = normaliser.labels(owners or [])
            vector = embedding_from_bytes(embedding)
            if vector is None:
                data.no_embedding += bool(labels)
                continue
            if not labels:
                data.untagged += 1
                continue
            data.paths.append(path)
            data.folders.append(os.path.dirname(path))
            level, group = group_of(path, _grouping_of(path))  # tags only, read now: no schema change
            data.levels.append(level)
            data.groups.append(group)
            data.labels.append(labels)
            vectors.append(vector)
    if vectors:
        if len({v.shape for v in vectors}) > 1:
            raise ValueError(f"embeddings of {model_id} differ in size across tracks: re-scan with --force")
        data.embeddings = np.stack(vectors)
    return data
