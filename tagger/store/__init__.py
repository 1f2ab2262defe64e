"""Storage: SQLAlchemy models and the database handle (migrations applied on open)."""

from tagger.store.db import Database
from tagger.store.models import Result, TagWrite, TagWriteStatus, Track, TrackStatus

__all__ = ["Database", "Result", "TagWrite", "TagWriteStatus", "Track", "TrackStatus"]
