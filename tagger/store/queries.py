"""Queries about tracks that more than one caller needs, each one round trip."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import or_, select

from tagger.store.db import Database
from tagger.store.models import _RAW_PREFIX, Track, TrackStatus
from tagger.walk import is_under


def tracks_under(db: Database, folder: str | Path) -> list[str]:
    """Paths of the tracks inside ``folder`` (not the folder itself) that are not marked gone.

    The database narrows by prefix; :func:`~tagger.walk.is_under` decides, because ``LIKE`` ignores case
    on SQLite and MariaDB, and names that are not UTF-8 are stored encoded (matched here once decoded).
    """
    folder = os.fspath(folder)
    prefix = folder.rstrip(os.sep) + os.sep
    encoded = Track.path.startswith(_RAW_PREFIX)
    try:
        prefix.encode("utf-8")
        narrowed = or_(Track.path.startswith(prefix, autoescape=True), encoded)
    except UnicodeEncodeError:
        narrowed = encoded  # then every track inside is stored encoded
    query = select(Track.path).where(narrowed, Track.status != TrackStatus.GONE)
    with db.session() as session:
        return [path for path in session.scalars(query) if path != folder and is_under(path, [folder])]
