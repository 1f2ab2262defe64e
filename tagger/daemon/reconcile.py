"""The catch-up and reconcile walk: every file under the roots through the scanner in chunks, then the
tracks whose files vanished are marked gone (not under a root that is missing or empty: an unmounted
share must not mark a library gone).

It runs at start (tags what changed while stopped), every ``watch.reconcile_hours``, after a queue
overflow, and when a reload brings new tagging options (tracks are re-decided from their stored results).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from tagger.record import Library
from tagger.walk import WalkError, iter_audio_files

log = logging.getLogger("tagger.daemon")

CATCHUP_CHUNK = 256  # files per Scanner.run call during the catch-up walk


def _chunks(items: Iterable[tuple[Path, Path]], size: int) -> Iterator[list[tuple[Path, Path]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Walk:
    """One walk in progress: the chunks still to come, and what the chunks so far changed."""

    def __init__(
        self, roots: list[str], follow_symlinks: bool, on_error: WalkError, reason: str, force: bool = False
    ) -> None:
        self.reason = reason
        self.force = force  # classify unchanged files too (``watch --force``)
        self.files = 0
        self.counts: Counter[str] = Counter()
        self._started = time.monotonic()
        self._chunks = _chunks(iter_audio_files(roots, follow_symlinks, on_error), CATCHUP_CHUNK)
        log.info("%s: checking every file under the roots", reason)

    def next_chunk(self) -> list[tuple[Path, Path]] | None:
        return next(self._chunks, None)

    def done(self, chunk: list[tuple[Path, Path]], changes: Counter[str]) -> None:
        self.files += len(chunk)
        self.counts.update(changes)

    def finished(self, vanished: int) -> None:
        took = time.monotonic() - self._started
        changes = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "nothing"
        log.info("%s done in %.1f s: %d files (%s), %d vanished", self.reason, took, self.files, changes, vanished)


def mark_vanished(library: Library, roots: list[str], mark_gone: Callable[[str], bool]) -> int:
    """Tracks under the roots whose files are gone, through ``mark_gone``; a missing or empty root is left alone."""
    vanished = library.vanished(roots)
    for root in vanished.unmounted:
        log.warning("%s is missing or empty (not mounted?): its tracks are not marked gone", root)
    return sum(mark_gone(path) for path in vanished.paths)


class Reconciler:
    """When the next walk is due, and the walk in progress (None between walks)."""

    def __init__(self, roots: list[str], follow_symlinks: bool, on_error: WalkError) -> None:
        self.roots = roots
        self.follow_symlinks = follow_symlinks
        self.on_error = on_error
        self.walk: Walk | None = None
        self.next_due: float | None = None  # time.monotonic() of the next periodic walk
        self.last: float | None = None  # time.time() the last walk finished

    def start(self, reason: str, force: bool = False) -> None:
        self.walk = Walk(self.roots, self.follow_symlinks, self.on_error, reason, force)

    def start_if_due(self, overflowed: bool) -> bool:
        """Start a walk after dropped events or at the periodic time; whether one started."""
        if overflowed:
            self.start("reconcile after dropped events")
        elif self.next_due is not None and time.monotonic() >= self.next_due:
            self.start("periodic reconcile")
        else:
            return False
        return True

    def finish(self, vanished: int, reconcile_hours: float | None) -> None:
        assert self.walk is not None
        self.walk.finished(vanished)
        self.walk = None
        self.last = time.time()
        hours = reconcile_hours
        self.next_due = time.monotonic() + hours * 3600 if hours and hours > 0 else None
