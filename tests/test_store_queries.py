"""tagger/store/queries.py on every engine: the rows a daemon folder event needs, and no others."""

from __future__ import annotations

from tagger.store import Database, Track, TrackStatus
from tagger.store.queries import tracks_under


def test_tracks_under_is_the_folder_s_live_tracks_exactly(any_database: Database) -> None:
    latin1 = b"/music/a_b/caf\xe9.flac".decode("utf-8", "surrogateescape")  # stored encoded: not UTF-8
    inside = ["/music/a_b/x.flac", "/music/a_b/deep/y.wav", latin1]
    outside = [
        "/music/a_b",  # the folder itself
        "/music/a_bc/z.flac",  # a sibling sharing the prefix
        "/music/axb/w.flac",  # `_` is no wildcard
        "/music/A_B/v.flac",  # LIKE ignores case on SQLite and MariaDB; paths do not
        b"/music/a_bc/caf\xe9.flac".decode("utf-8", "surrogateescape"),
    ]
    with any_database.session() as session:
        for path in [*inside, *outside]:
            session.add(Track(path=path, status=TrackStatus.DONE))
        session.add(Track(path="/music/a_b/gone.flac", status=TrackStatus.GONE))
    assert sorted(tracks_under(any_database, "/music/a_b")) == sorted(inside)
    assert sorted(tracks_under(any_database, "/music/a_b/")) == sorted(inside)
    assert tracks_under(any_database, "/music/empty") == []
    folder = b"/music/caf\xe9".decode("utf-8", "surrogateescape")
    with any_database.session() as session:
        session.add(Track(path=folder + "/t.flac", status=TrackStatus.DONE))
    assert tracks_under(any_database, folder) == [folder + "/t.flac"]
