"""What the database can re-tag without the audio: tracks whose stored results (window probabilities, the mood
scores, or the embedding for a learned vocabulary) are enough to decide again, and those only the audio can redo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import aliased

from tagger.moods import stored_mood_rows
from tagger.pipeline import TrackAnalysis
from tagger.store.db import Database
from tagger.store.embedding import embedding_from_bytes
from tagger.store.models import Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.store.queries import is_latest_result
from tagger.vocabulary import LearnedVocabulary, Vocabulary


def stored_analyses(
    db: Database,
    vocabulary: Vocabulary,
    model_id: str,
    decided_with: str | None = None,
    paths: list[str] | None = None,
    moods: Vocabulary | None = None,
) -> dict[str, TrackAnalysis]:
    """path -> an analysis rebuilt from the database, for tracks that can be re-tagged without audio.

    That is a classified track (among ``paths``, if given) whose latest result is from ``model_id`` and

    * under this vocabulary, but decided with other options than ``decided_with`` (see
      :attr:`~tagger.record.TagOptions.decided_with`; unknown for rows older than that column)
      and not restored since: rebuilt from the stored window probabilities, so a new top-k or
      policy needs no decoding;
    * for a learned vocabulary, under another vocabulary (or under this name but older than the
      vocabulary's current version) with an embedding;
    * with a learned mood vocabulary ``moods``, older than its current version, with an embedding (and,
      for a model head, under this vocabulary: its genre is re-decided from the stored windows).
    """
    same = Result.vocabulary == vocabulary.name
    stale: ColumnElement[bool] = _redecided(vocabulary, decided_with)
    if not vocabulary.needs_audio:
        other = ~same
        if isinstance(vocabulary, LearnedVocabulary):
            other = or_(other, Result.created_at < vocabulary.learned_at)
        stale = or_(stale, and_(other, Result.embedding.is_not(None)))
    if isinstance(moods, LearnedVocabulary):
        relearned = and_(Result.created_at < moods.learned_at, Result.embedding.is_not(None))
        stale = or_(stale, and_(same, relearned) if vocabulary.needs_audio else relearned)
    query = (
        select(Track.path, Track.duration, Result.model_id, Result.vocabulary, Result.windows, Result.embedding)
        .add_columns(Result.moods)
        .join(Result, and_(Result.track_id == Track.id, is_latest_result()))
        .where(Track.status == TrackStatus.DONE, Result.model_id == model_id, stale)
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    analyses: dict[str, TrackAnalysis] = {}
    with db.session() as session:
        for path, duration, result_model, result_vocabulary, windows, embedding, decided in session.execute(query):
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
                stored_moods=decided,  # a mood head's decision is re-made from its stored scores
            )
    return analyses


def _redecided(vocabulary: Vocabulary, decided_with: str | None) -> ColumnElement[bool]:
    """A latest result under this vocabulary decided with other options than ``decided_with`` (None: none is)."""
    if decided_with is None:
        return false()
    # A decision whose tag write the owner undid (`tagger restore`) is left alone: `--force` redoes it.
    restored = select(TagWrite.id).where(TagWrite.result_id == Result.id, TagWrite.status == TagWriteStatus.RESTORED)
    other = or_(Result.decided_with.is_(None), Result.decided_with != decided_with)
    return and_(Result.vocabulary == vocabulary.name, other, ~restored.exists())


def outdated_writes(
    db: Database,
    vocabulary: Vocabulary,
    model_id: str,
    paths: list[str] | None = None,
    moods: Vocabulary | None = None,
    decided_with: str | None = None,
) -> set[str]:
    """Paths of unchanged-looking tracks to classify again (decoded) because the default moved on, or because
    their decision is to be re-made (see :func:`stored_analyses`) with a mood head whose scores the stored result
    lacks (moods were off, or the result is older than moods): only the audio gives them.

    A classified track whose latest result is from another model (``model_id``) or another model
    head than ``vocabulary``, and whose genre this tool wrote (its latest tag write applied, not
    restored): its stored probabilities are the old head's, so only the audio can give the new
    genres. Where the owner's genre was kept, or the owner restored it, the track is left alone.
    A learned vocabulary is not concerned: it reads embeddings of its own model only.
    """
    missing = _without_mood_scores(db, vocabulary, model_id, paths, moods, decided_with)
    if not vocabulary.needs_audio:
        return missing
    write = aliased(TagWrite)
    latest_write = select(func.max(write.id)).where(write.track_id == Track.id).scalar_subquery()
    query = (
        select(Track.path)
        # track_id spelled out too: the same rows, and the planner sees how the tables connect
        .join(Result, and_(Result.track_id == Track.id, is_latest_result()))
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
        return set(session.scalars(query)) | missing


def _without_mood_scores(
    db: Database,
    vocabulary: Vocabulary,
    model_id: str,
    paths: list[str] | None,
    moods: Vocabulary | None,
    decided_with: str | None,
) -> set[str]:
    if moods is None or not moods.needs_audio or decided_with is None:
        return set()  # a learned mood vocabulary reads the stored embedding
    query = (
        select(Track.path, Result.moods)
        .join(Result, and_(Result.track_id == Track.id, is_latest_result()))
        .where(
            Track.status == TrackStatus.DONE,
            Result.model_id == model_id,
            # No mood scores stored (moods were off, the model had no mood head, a row from before 0005): only the
            # audio gives them, once.
            or_(_redecided(vocabulary, decided_with), Result.moods.is_(None)),
        )
    )
    if paths is not None:
        query = query.where(Track.path.in_(paths))
    with db.session() as session:
        return {path for path, record in session.execute(query) if stored_mood_rows(record, moods.head) is None}
