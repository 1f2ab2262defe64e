"""Applying a vocabulary made by ``tagger learn``: a linear head over the track embedding.

Its input is the mean window embedding the scan already stores per track, so re-tagging a
scanned library in the owner's vocabulary reads the database, not the audio
(:func:`stored_analyses`, used by the scanner's triage).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import aliased

from tagger.errors import ModelError
from tagger.learn import CARD_KIND, CARD_SCHEMA_VERSION, LinearHead
from tagger.library import embedding_from_bytes
from tagger.model import Head, ModelCard
from tagger.pipeline import TrackAnalysis
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.vocabulary import Vocabulary


class LearnedVocabulary(Vocabulary):
    """The owner's genres: one probability row per track, from its embedding alone."""

    needs_audio = False

    def __init__(
        self, head: Head, linear: LinearHead, model_id: str, learned_at: datetime, card: dict[str, Any]
    ) -> None:
        self.head = head
        self.linear = linear
        self.model_id = model_id
        self.learned_at = learned_at  # naive UTC, comparable with Result.created_at
        self.card = card

    def window_probabilities(self, analysis: TrackAnalysis) -> np.ndarray:
        if analysis.model_id != self.model_id:
            raise ModelError(f"vocabulary {self.name!r} needs embeddings of {self.model_id}, not {analysis.model_id}")
        if analysis.embedding is None or analysis.embedding.shape != self.linear.mean.shape:
            raise ModelError(f"vocabulary {self.name!r} needs a {self.linear.mean.shape[0]}-d embedding of the track")
        # Rounded as the database stores it, so a fresh scan and a re-tag from the database agree.
        embedding = np.asarray(analysis.embedding, dtype=np.float16).astype(np.float32)
        return self.linear.probabilities(embedding).astype(np.float32)


def load_learned_vocabulary(path: str | Path, card: ModelCard) -> LearnedVocabulary:
    """Read a learned vocabulary's card; refuse one learned on another model's embeddings."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read learned vocabulary {path}: {error}") from error
    if not isinstance(data, dict) or data.get("kind") != CARD_KIND:
        raise ModelError(f"{path} is not a learned vocabulary card")
    if int(data.get("schema_version", 0)) > CARD_SCHEMA_VERSION:
        raise ModelError(f"{path} was written by a newer genre-tagger (schema {data.get('schema_version')})")
    if data.get("model_id") != card.model_id:
        raise ModelError(
            f"vocabulary {path.stem!r} was learned on embeddings of {data.get('model_id')}, and this model is "
            f"{card.model_id}: run `tagger scan` and `tagger learn` with this model, or pick --model "
            f"{str(data.get('model_id', '')).split('@')[0]}"
        )
    if card.embedding_output is None:
        raise ModelError(f"model {card.model_id} has no embedding output")
    try:
        head = Head.from_dict(path.stem, data["head"])
        linear = LinearHead.from_dict(data["linear"])
        learned_at = datetime.fromisoformat(data["learned_at"].replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"learned vocabulary {path} is missing or has a bad field: {error}") from error
    if head.task != "multilabel" or len(head.labels) != len(linear.bias):
        raise ModelError(f"learned vocabulary {path}: {len(head.labels)} labels for {len(linear.bias)} weight rows")
    return LearnedVocabulary(head, linear, card.model_id, learned_at.replace(tzinfo=None), data)


def stored_analyses(
    db: Database,
    vocabulary: Vocabulary,
    model_id: str,
    decided_with: str | None = None,
    paths: list[str] | None = None,
) -> dict[str, TrackAnalysis]:
    """path -> an analysis rebuilt from the database, for tracks that can be re-tagged without audio.

    That is a classified track (among ``paths``, if given) whose latest result is from ``model_id`` and

    * under this vocabulary, but decided with other options than ``decided_with`` (see
      :attr:`~tagger.library.TagOptions.decided_with`; unknown for rows older than that column)
      and not restored since: rebuilt from the stored window probabilities, so a new top-k or
      policy needs no decoding;
    * for a learned vocabulary, under another vocabulary (or under this name but older than the
      vocabulary's current version) with an embedding.
    """
    newer = aliased(Result)
    latest = select(func.max(newer.id)).where(newer.track_id == Track.id).scalar_subquery()  # per track (indexed)
    same = Result.vocabulary == vocabulary.name
    # A decision whose tag write the owner undid (`tagger restore`) is left alone: `--force` redoes it.
    restored = select(TagWrite.id).where(TagWrite.result_id == Result.id, TagWrite.status == TagWriteStatus.RESTORED)
    redecide = (
        and_(same, or_(Result.decided_with.is_(None), Result.decided_with != decided_with), ~restored.exists())
        if decided_with is not None
        else false()
    )
    stale: ColumnElement[bool] = redecide
    if not vocabulary.needs_audio:
        other = ~same
        if isinstance(vocabulary, LearnedVocabulary):
            other = or_(other, Result.created_at < vocabulary.learned_at)
        stale = or_(stale, and_(other, Result.embedding.is_not(None)))
    query = (
        select(Track.path, Track.duration, Result.model_id, Result.vocabulary, Result.windows, Result.embedding)
        .join(Result, Result.id == latest)
        .where(Track.status == TrackStatus.DONE, Result.model_id == model_id, stale)
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    analyses: dict[str, TrackAnalysis] = {}
    with db.session() as session:
        for path, duration, result_model, result_vocabulary, windows, embedding in session.execute(query):
            probabilities: dict[str, np.ndarray] = {}
            starts: list[float] = []
            if result_vocabulary == vocabulary.name and vocabulary.needs_audio:
                rows = np.asarray((windows or {}).get("probabilities") or [], dtype=np.float32)
                if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != len(vocabulary.head.labels):
                    continue  # nothing to re-decide from: left as it is (--force re-classifies)
                probabilities = {vocabulary.name: rows}
                starts = list(windows.get("starts") or [])
            elif embedding is None:
                continue  # a learned vocabulary reads the embedding: this track needs a scan with --force
            analyses[path] = TrackAnalysis(
                path=Path(path),
                model_id=result_model,
                duration=duration or 0.0,
                window_starts=starts,
                probabilities=probabilities,
                embedding=embedding_from_bytes(embedding),
            )
    return analyses


def outdated_writes(db: Database, vocabulary: Vocabulary, model_id: str, paths: list[str] | None = None) -> set[str]:
    """Paths of unchanged-looking tracks to classify again (decoded) because the default moved on.

    A classified track whose latest result is from another model (``model_id``) or another model
    head than ``vocabulary``, and whose genre this tool wrote (its latest tag write applied, not
    restored): its stored probabilities are the old head's, so only the audio can give the new
    genres. Where the owner's genre was kept, or the owner restored it, the track is left alone.
    A learned vocabulary is not concerned: it reads embeddings of its own model only.
    """
    if not vocabulary.needs_audio:
        return set()
    newer = aliased(Result)
    latest = select(func.max(newer.id)).where(newer.track_id == Track.id).scalar_subquery()
    write = aliased(TagWrite)
    latest_write = select(func.max(write.id)).where(write.track_id == Track.id).scalar_subquery()
    query = (
        select(Track.path)
        # track_id spelled out too: the same rows, and the planner sees how the tables connect
        .join(Result, and_(Result.track_id == Track.id, Result.id == latest))
        .join(TagWrite, and_(TagWrite.track_id == Track.id, TagWrite.id == latest_write))
        .where(
            Track.status == TrackStatus.DONE,
            TagWrite.status == TagWriteStatus.APPLIED,
            or_(Result.model_id != model_id, Result.vocabulary != vocabulary.name),
        )
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    with db.session() as session:
        return set(session.scalars(query))
