"""Queries about tracks that more than one caller needs, each one round trip."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import ColumnElement, and_, or_, select

from tagger.store.db import Database
from tagger.store.models import _RAW_PREFIX, Track, TrackStatus
from tagger.walk import is_under


def _path_starts_with(prefix: str, binary_order: bool) -> ColumnElement[bool]:
    if binary_order:  # SQLite compares text byte by byte: a range the unique index on path answers
        return and_(Track.path >= prefix, Track.path < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return Track.path.startswith(prefix, autoescape=True)  # a collation may order paths otherwise: LIKE


def tracks_under(db: Database, folder: str | Path) -> list[str]:
    """Paths of the tracks inside ``folder`` (not the folder itself) that are not marked gone.

    The database narrows by prefix; :func:`~tagger.walk.is_under` decides, because ``LIKE`` ignores case
    on SQLite and MariaDB, and names that are not UTF-8 are stored encoded (matched here once decoded).
    """
    folder = os.fspath(folder)
    prefix = folder.rstrip(os.sep) + os.sep
    binary_order = db.engine.dialect.name == "sqlite"
    encoded = _path_starts_with(_RAW_PREFIX, binary_order)
    try:
        prefix.encode("utf-8")
        narrowed = or_(_path_starts_with(prefix, binary_order), encoded)
    except UnicodeEncodeError:
        narrowed = encoded  # then every track inside is stored encoded
    query = select(Track.path).where(narrowed, Track.status != TrackStatus.GONE)
    with db.session() as session:
        return [path for path in session.scalars(query) if path != folder and is_under(path, [folder])]
