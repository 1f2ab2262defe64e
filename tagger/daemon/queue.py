"""The daemon's queue: files waiting out their quiet period, and operations kept in order; both bounded.

Debounce: every event re-arms the file's due time to ``now + quiet_seconds``; at the due time the file is
stat-ed again and only a size+mtime equal to the last event's (and an mtime older than the quiet period)
lets it through. A slow copy is therefore read once, after it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tagger.daemon.events import FileDeleted, FileMoved, FolderDeleted, FolderMoved, Operation
from tagger.track import FileState
from tagger.walk import is_under

log = logging.getLogger("tagger.daemon")


@dataclass
class Pending:
    """A file waiting for its quiet period; the whole queue holds only these (no audio, no events)."""

    root: str
    state: FileState | None
    due: float  # time.monotonic()


class ChangeQueue:
    """Filled by the observer threads, emptied by the processor; one lock guards both tables.

    Past ``limit`` entries in a table a change is dropped and :meth:`take_overflowed` turns true, for a
    full reconcile to find it: a million-file copy cannot exhaust memory. ``wake`` is set on every change.
    """

    def __init__(self, quiet_seconds: float, limit: int, root_of: Callable[[str], str | None]) -> None:
        self.quiet_seconds = quiet_seconds
        self.limit = limit
        self._root_of = root_of
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self._operations: deque[Operation] = deque()
        self._overflowed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._operations)

    def is_empty(self) -> bool:
        """Nothing waiting and no dropped change still to be reconciled."""
        with self._lock:
            return not self._pending and not self._operations and not self._overflowed

    # ------------------------------------------------------------------ observer side (any thread)
    def touch(self, path: str) -> None:
        """(Re)start ``path``'s quiet period, remembering its size+mtime now; a path outside the roots is ignored."""
        root = self._root_of(path)
        if root is None:
            return
        try:
            state = FileState.of(path)
        except OSError:
            return  # already gone again: its deletion or move event follows
        due = time.monotonic() + self.quiet_seconds
        with self._lock:
            entry = self._pending.pop(path, None)
            if entry is None and len(self._pending) >= self.limit:
                self._overflow()
                return
            self._pending[path] = Pending(root, state, due)  # re-inserted: the dict stays in event order
        self.wake.set()

    def put(self, operation: Operation) -> None:
        """Queue ``operation``; a file waiting under its source will not be read (it is no longer there)."""
        with self._lock:
            match operation:
                case FileMoved(source=path) | FileDeleted(path=path):
                    self._pending.pop(path, None)
                case FolderMoved(source=folder) | FolderDeleted(folder=folder):
                    for path in [p for p in self._pending if is_under(p, [folder])]:
                        del self._pending[path]
            if len(self._operations) >= self.limit:
                self._overflow()
                return
            self._operations.append(operation)
        self.wake.set()

    def _overflow(self) -> None:
        """Called with the lock held: drop the change, a reconcile will find it."""
        if not self._overflowed:
            log.warning("more than %d queued changes: dropping events, a full re-check follows", self.limit)
        self._overflowed = True

    # ------------------------------------------------------------------ processor side
    def take_operations(self) -> list[Operation]:
        with self._lock:
            operations = list(self._operations)
            self._operations.clear()
        return operations

    def take_overflowed(self) -> bool:
        """Whether changes were dropped since the last call."""
        with self._lock:
            overflowed, self._overflowed = self._overflowed, False
        return overflowed

    def ready_batch(self, size: int) -> tuple[list[tuple[Path, Path]], float | None]:
        """Up to ``size`` files whose quiet period passed with size+mtime unchanged; and when the next one is due."""
        now = time.monotonic()
        due: list[tuple[str, Pending]] = []
        next_due: float | None = None
        with self._lock:
            for path, entry in self._pending.items():
                if entry.due <= now:
                    if len(due) < size * 2:
                        due.append((path, entry))
                elif next_due is None or entry.due < next_due:
                    next_due = entry.due
        batch: list[tuple[Path, Path]] = []
        for path, entry in due:
            try:
                state: FileState | None = FileState.of(path)
            except OSError:
                state = None
            age = time.time() - state.mtime_ns / 1e9 if state else 0.0
            with self._lock:
                if self._pending.get(path) is not entry:
                    continue  # a new event arrived meanwhile: its own quiet period runs
                if state is None:
                    del self._pending[path]
                    continue
                if state != entry.state or 0 <= age < self.quiet_seconds:
                    # changed without an event (polling, a late event) or written very recently: wait more
                    wait = self.quiet_seconds if state != entry.state else self.quiet_seconds - age
                    entry.state, entry.due = state, time.monotonic() + wait
                    next_due = entry.due if next_due is None else min(next_due, entry.due)
                    continue
                if len(batch) >= size:
                    next_due = now
                    break
                del self._pending[path]
                batch.append((Path(entry.root), Path(path)))
        return batch, next_due
