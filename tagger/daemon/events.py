"""Watchdog events -> typed changes: a pure translation (no stat, no database) in the observer threads.

Only these event classes reach the handler (:data:`WATCHED_EVENTS`): opens and read-only closes (our own
decoding) never wake the daemon. The tag writer's own rewrite (a hidden temp file renamed over the track)
arrives as :class:`Written` for the track; the scanner triages it as unchanged, so the daemon never
re-classifies its own writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from tagger.walk import is_candidate, is_under

log = logging.getLogger("tagger.daemon")

WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


@dataclass(frozen=True)
class Written:
    """An audio file was created, written or renamed into place: (re)start its quiet period."""

    path: str


@dataclass(frozen=True)
class FileMoved:
    """A file was renamed; ``destination`` is None when it left the roots or is no audio name now (so: gone)."""

    source: str
    destination: str | None


@dataclass(frozen=True)
class FileDeleted:
    path: str


@dataclass(frozen=True)
class FolderAppeared:
    """A folder was created or moved in: walk it, its files may have come with it."""

    folder: str


@dataclass(frozen=True)
class FolderMoved:
    """``destination`` is None when the folder left the roots: its tracks are gone."""

    source: str
    destination: str | None


@dataclass(frozen=True)
class FolderDeleted:
    folder: str


@dataclass(frozen=True)
class RootChanged:
    """A watched root itself was deleted or moved: its observer has stopped watching it."""

    root: str


Operation = FileMoved | FileDeleted | FolderAppeared | FolderMoved | FolderDeleted
"""A change applied in order by the processor (database only, no classification)."""
Change = Written | RootChanged | Operation


def changes(event: FileSystemEvent, roots: Sequence[str]) -> list[Change]:
    """What one watchdog event means for the library under ``roots`` (canonical paths, as the observers report)."""
    source = os.fsdecode(event.src_path)
    destination = os.fsdecode(event.dest_path) if event.dest_path else None
    inside = destination is not None and is_under(destination, roots)
    match event:
        case DirDeletedEvent() | DirMovedEvent() if source in roots:
            return [RootChanged(source)]
        case DirCreatedEvent():
            return [FolderAppeared(source)]
        case DirDeletedEvent():
            return [FolderDeleted(source)]
        case DirMovedEvent():
            if destination is not None and inside:
                return [FolderMoved(source, destination), FolderAppeared(destination)]
            return [FolderMoved(source, None)]
        case FileCreatedEvent() | FileModifiedEvent() | FileClosedEvent():
            return [Written(source)] if is_candidate(source) else []
        case FileDeletedEvent():
            return [FileDeleted(source)] if is_candidate(source) else []
        case FileMovedEvent():
            kept = destination if destination is not None and inside and is_candidate(destination) else None
            moved: list[Change] = [FileMoved(source, kept)] if is_candidate(source) else []
            return moved + ([Written(kept)] if kept is not None else [])
    return []


class Handler(FileSystemEventHandler):
    """Hands each event's changes to ``put``, in the observer's thread; an observer thread must never die."""

    def __init__(self, roots: Sequence[str], put: Callable[[Change], None]) -> None:
        self.roots = roots
        self.put = put

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            destination = f" -> {os.fsdecode(event.dest_path)}" if event.dest_path else ""
            kind = f"{event.event_type}{' dir' if event.is_directory else ''}"
            log.debug("event %s %s%s", kind, os.fsdecode(event.src_path), destination)
            for change in changes(event, self.roots):
                self.put(change)
        except Exception:
            log.exception("event %s not handled", event)
