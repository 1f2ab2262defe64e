"""More like this: the tracks whose stored embeddings are nearest to one track's, by cosine similarity.

Every scanned track has its embedding in the database (the mean over its windows, float16; see
:mod:`tagger.store.embedding`). The index loads those of one model into one matrix of unit rows, once; a
query is then one matrix-vector product and a partial sort: no decoding, no index library (100k
tracks: see ``bench/similar.py``). A file never scanned is classified on the fly (nothing is
written). Embeddings of different models are not comparable: only the query model's are loaded.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from sqlalchemy import select

from tagger.errors import FileError
from tagger.m3u import Entry, TagCache, TrackTags, render_m3u, replace_text
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.embedding import as_stored, embedding_from_bytes
from tagger.store.queries import is_latest_result
from tagger.tags.grouping import Grouping, read_grouping


class OnePer(StrEnum):
    """``--one-per``: at most one track per album or per artist, for variety."""

    ALBUM = "album"
    ARTIST = "artist"


@dataclass(frozen=True)
class Neighbour:
    path: str
    similarity: float  # cosine, -1..1
    duration: float | None

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "similarity": round(self.similarity, 4), "duration": self.duration}


class EmbeddingIndex:
    """The stored embeddings of one model as a matrix of unit rows, with their tracks' paths."""

    def __init__(self, model_id: str, paths: list[str], durations: list[float | None], vectors: np.ndarray) -> None:
        self.model_id = model_id
        self.paths = paths
        self.durations = durations
        self.vectors = vectors  # (tracks, dims) float32, unit rows (a zero vector stays zero)
        self._rows = {path: row for row, path in enumerate(paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def load(cls, db: Database, model_id: str) -> EmbeddingIndex:
        """Each classified track's latest embedding from ``model_id`` (one query, one buffer)."""
        query = (
            select(Track.path, Track.duration, Result.embedding)
            .join(Result, (Result.track_id == Track.id) & is_latest_result(model_id=model_id, with_embedding=True))
            .where(Track.status == TrackStatus.DONE)
        )
        with db.session() as session:
            # Core rows, not ORM ones: 100k rows load in a third of the time
            rows = [
                (path, duration, blob) for path, duration, blob in session.connection().execute(query).all() if blob
            ]
        sizes = Counter(len(blob) for _, _, blob in rows)
        size = sizes.most_common(1)[0][0] if sizes else 0  # a row of another size is damaged: left out
        kept = [row for row in rows if len(row[2]) == size and size]
        flat = embedding_from_bytes(b"".join(blob for _, _, blob in kept))  # the stored codec, all rows at once
        assert flat is not None
        matrix = flat.reshape(len(kept), -1) if kept else np.zeros((0, 0), np.float32)
        return cls(model_id, [p for p, _, _ in kept], [d for _, d, _ in kept], unit_rows(matrix, in_place=True))

    def vector_of(self, path: str) -> np.ndarray | None:
        row = self._rows.get(path)
        return None if row is None else self.vectors[row]

    def nearest(
        self,
        vector: np.ndarray,
        n: int = 30,
        exclude: Collection[str] = (),
        key: Callable[[str], Hashable] | None = None,
        taken: Collection[Hashable] = (),
    ) -> list[Neighbour]:
        """The ``n`` most similar tracks to ``vector``, without ``exclude``; with ``key`` (album, artist)
        only the most similar track of each key, none of the keys in ``taken`` (the query's own)."""
        if not len(self) or n <= 0:
            return []
        query = unit_rows(np.asarray(vector, dtype=np.float32)[None, :])[0]
        if query.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"an embedding of {query.shape[0]} values, the index has {self.vectors.shape[1]}")
        scores = self.vectors @ query
        if key is None:  # the top n + excluded ones, sorted; the rest is never sorted
            k = min(len(scores), n + len(exclude))
            top = np.argpartition(-scores, k - 1)[:k]
            order: np.ndarray = top[np.argsort(-scores[top], kind="stable")]
        else:  # keys read lazily, best first, until n different ones are found
            order = np.argsort(-scores, kind="stable")
        found: list[Neighbour] = []
        seen = set(taken)
        for row in order:
            path = self.paths[row]
            if path in exclude:
                continue
            if key is not None:
                group = key(path)
                if group in seen:
                    continue
                seen.add(group)
            found.append(Neighbour(path, float(scores[row]), self.durations[row]))
            if len(found) == n:
                break
        return found


def unit_rows(matrix: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Each row divided by its length (a zero row stays zero); ``in_place`` spares a copy of a large matrix."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))[:, None]  # no (n, d) temporary, unlike linalg.norm
    out = matrix if in_place else matrix.astype(np.float32, copy=True)
    out /= np.where(norms > 0, norms, 1.0)
    return out


def album_key(path: str) -> Hashable:
    """The album tag with the album artist, else with the folder (the rule of :mod:`tagger.album`: a
    compilation's tracks name several artists); a track without an album tag: its folder."""
    grouping = _grouping(path)
    folder = os.path.dirname(path)
    if grouping is not None and grouping.album:
        return ("album", grouping.album.casefold(), grouping.albumartist.casefold() or "folder:" + folder)
    return ("folder", folder)


def artist_key(path: str) -> Hashable:
    """The artist (else album artist) from the tags; a track naming none is its own."""
    grouping = _grouping(path)
    artist = grouping and (grouping.artist or grouping.albumartist)
    return ("artist", artist.casefold()) if artist else ("track", path)


KEYS: dict[OnePer, Callable[[str], Hashable]] = {OnePer.ALBUM: album_key, OnePer.ARTIST: artist_key}


def _grouping(path: str) -> Grouping | None:
    try:
        return read_grouping(path)
    except (FileError, OSError):
        return None


@dataclass
class Similar:
    """What ``tagger similar`` found."""

    query: str
    scanned: bool  # False: classified just now (not stored)
    model_id: str
    tracks: int  # embeddings searched
    neighbours: list[Neighbour]

    def to_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "scanned": self.scanned,
            "model": self.model_id,
            "tracks": self.tracks,
            "neighbours": [n.to_dict() for n in self.neighbours],
        }

    def write_m3u(self, path: Path, title: str) -> None:
        """The neighbours, in order, as the playlist ``path`` (atomically; raises :class:`OSError`)."""
        cache = TagCache()
        entries = [Entry(x.path, x.duration, cache.get(x.path) or TrackTags(), {}) for x in self.neighbours]
        replace_text(path, render_m3u(entries, path.parent, title, "similar"))


def similar_to(
    index: EmbeddingIndex,
    path: str | Path,
    n: int = 30,
    one_per: OnePer | None = None,
    embed: Callable[[Path], np.ndarray | None] | None = None,
) -> Similar:
    """The neighbours of the track at ``path`` (canonical): its stored embedding, else ``embed(path)``
    (classify it now). Raises :class:`LookupError` when it has none either way."""
    query = str(path)
    vector = index.vector_of(query)
    scanned = vector is not None
    if vector is None and embed is not None:
        computed = embed(Path(query))
        if computed is not None:  # rounded as stored, so a scanned copy of the file is found at similarity 1
            vector = as_stored(computed)
    if vector is None:
        raise LookupError(f"{query}: the model {index.model_id} gives no embedding")
    key = KEYS[one_per] if one_per is not None else None
    taken = [key(query)] if key is not None else []
    neighbours = index.nearest(vector, n, exclude={query}, key=key, taken=taken)
    return Similar(query, scanned, index.model_id, len(index), neighbours)
