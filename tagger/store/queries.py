"""Queries over the schema that several commands share (one rule, written once)."""

from __future__ import annotations

from sqlalchemy import Subquery, func, select

from tagger.store.models import Result


def latest_results(
    vocabulary: str | None = None, model_id: str | None = None, with_embedding: bool = False
) -> Subquery:
    """``(track_id, id)``: each track's latest result, among those of ``vocabulary`` / ``model_id`` /
    with an embedding where given. The rule ``tagger report`` counts by (newest row id per track);
    join ``Result.id == latest.c.id`` to get the rows."""
    query = select(Result.track_id, func.max(Result.id).label("id")).group_by(Result.track_id)
    if vocabulary is not None:
        query = query.where(Result.vocabulary == vocabulary)
    if model_id is not None:
        query = query.where(Result.model_id == model_id)
    if with_embedding:
        query = query.where(Result.embedding.is_not(None))
    return query.subquery()
