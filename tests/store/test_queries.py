"""The store's queries on every engine: each track's latest result, by the one rule all its users share."""

from __future__ import annotations

from sqlalchemy import and_, select

from tagger.store import Database, Result, Track
from tagger.store.queries import is_latest_result


def _result(track: Track, model_id: str, vocabulary: str, embedding: bool) -> Result:
    return Result(
        track=track,
        model_id=model_id,
        vocabulary=vocabulary,
        genres=[],
        chosen=[],
        windows={},
        embedding=b"\0\0" if embedding else None,
    )


def test_latest_result_per_track_among_the_matching_ones(any_database: Database) -> None:
    with any_database.session() as session:
        a, b = Track(path="/music/a.flac"), Track(path="/music/b.flac")
        rows = [
            _result(a, "m1", "genres", embedding=True),
            _result(a, "m1", "mine", embedding=False),
            _result(a, "m2", "genres", embedding=True),
            _result(b, "m1", "genres", embedding=False),
        ]
        session.add_all([a, b, *rows])
        session.flush()
        r1, r2, r3, r4 = (row.id for row in rows)
        a_id, b_id = a.id, b.id

    def latest(**criteria: object) -> dict[int, int]:
        with any_database.session() as session:
            query = select(Result.track_id, Result.id).where(is_latest_result(**criteria))  # type: ignore[arg-type]
            return {track_id: result_id for track_id, result_id in session.execute(query)}

    assert latest() == {a_id: r3, b_id: r4}
    assert latest(vocabulary="genres") == {a_id: r3, b_id: r4}
    assert latest(vocabulary="mine") == {a_id: r2}
    assert latest(model_id="m1") == {a_id: r2, b_id: r4}
    assert latest(model_id="m1", with_embedding=True) == {a_id: r1}
    # In a join's ON clause it is correlated with the joined row too: a track without one gets none.
    with any_database.session() as session:
        joined = select(Track.path, Result.id).outerjoin(
            Result, and_(Result.track_id == Track.id, is_latest_result(model_id="m1", with_embedding=True))
        )
        assert dict(session.execute(joined).tuples().all()) == {"/music/a.flac": r1, "/music/b.flac": None}
