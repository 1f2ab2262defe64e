"""The watched roots: one observer each (inotify, else polling), and the roots that went missing.

One observer per root, so a root that cannot get inotify watches falls back to polling alone. The main
thread stats each root every ``ROOT_CHECK_SECONDS`` (and at once when its observer reports it deleted:
the observer stops watching then). A missing root is logged ("root missing") and listed in the status,
its tracks kept; once it is back, or is another folder than the one watched (deleted and recreated,
mounted or unmounted), it gets a new observer and a walk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from stat import S_ISDIR

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from tagger.daemon.events import WATCHED_EVENTS
from tagger.walk import is_under

log = logging.getLogger("tagger.daemon")

POLL_INTERVAL = 10.0  # seconds between the polling observer's snapshots (each stats every file)
ROOT_CHECK_SECONDS = 5.0  # seconds between stats of each root: a deleted, recreated or remounted root is re-watched


def root_of(path: str, roots: Sequence[str]) -> str | None:
    """The (longest) root ``path`` lies under, or None."""
    return max((root for root in roots if is_under(path, [root])), key=len, default=None)


def identity(folder: str) -> tuple[int, int] | None:
    """(device, inode) of ``folder``; None if it is not there (or not a folder)."""
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if S_ISDIR(stat.st_mode) else None


class Roots:
    """Observers for ``paths`` (canonical), feeding ``handler``; :meth:`check` re-watches a root that came back."""

    def __init__(self, paths: list[str], handler: FileSystemEventHandler, polling: bool) -> None:
        self.paths = paths
        self.handler = handler
        self.polling = polling
        self.observers: dict[str, BaseObserver] = {}
        self.modes: dict[str, str] = {}  # root -> "inotify" | "polling"
        self.missing: dict[str, float] = {}  # root -> since when (time.time())
        self.next_check = 0.0
        self._ids: dict[str, tuple[int, int]] = {}  # root -> (st_dev, st_ino) its observer watches

    def root_of(self, path: str) -> str | None:
        return root_of(path, self.paths)

    def start(self) -> None:
        for root in self.paths:
            if identity(root) is None:
                self._missing(root)
            else:
                self.observers[root] = self._watch(root)
        self.next_check = time.monotonic() + ROOT_CHECK_SECONDS

    def stop(self) -> None:
        for observer in self.observers.values():
            observer.stop()

    def join(self, deadline: float) -> None:
        for observer in self.observers.values():
            observer.join(max(0.1, deadline - time.monotonic()))

    def check_soon(self) -> None:
        """A root's observer saw the root itself go: look at the next turn of the main thread."""
        self.next_check = 0.0

    def check(self, walk: Callable[[str], None]) -> None:
        """Main thread: a root that vanished is reported (its tracks are kept: an unmounted disk is not a
        deleted library); once it is back, or is another folder than the one watched, it gets a new
        observer and ``walk`` is told to catch up on what came meanwhile."""
        self.next_check = time.monotonic() + ROOT_CHECK_SECONDS
        for root in self.paths:
            now = identity(root)
            if now is None:
                self._missing(root)
                continue
            observer = self.observers.get(root)
            alive = observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)
            if alive and now == self._ids.get(root) and root not in self.missing:
                continue
            since = self.missing.pop(root, None)
            if observer is not None:
                observer.stop()
                observer.join(5)
            try:
                self.observers[root] = self._watch(root)
            except OSError as error:  # gone again already, or no permission yet: the next check retries
                log.warning("%s: cannot watch it yet: %s", root, error)
                self.observers.pop(root, None)
                self.missing[root] = since or time.time()
                continue
            gap = f"missing for {time.time() - since:.0f} s" if since is not None else "replaced"
            log.info("root back: %s (%s); watching it again (%s), catching up", root, gap, self.modes[root])
            walk(root)

    def _missing(self, root: str) -> None:
        if root not in self.missing:
            self.missing[root] = time.time()
            log.warning("root missing: %s (deleted or not mounted); its tracks are kept, watched again once back", root)

    def _watch(self, root: str) -> BaseObserver:
        folder = identity(root)
        if folder is not None:
            self._ids[root] = folder
        if not self.polling:
            observer: BaseObserver = Observer()
            observer.schedule(self.handler, root, recursive=True, event_filter=WATCHED_EVENTS)
            try:
                observer.start()
                self.modes[root] = "inotify"
                return observer
            except OSError as error:
                log.warning(
                    "%s: no inotify watches (%s); polling this root instead "
                    "(raise fs.inotify.max_user_watches to avoid it)",
                    root,
                    error,
                )
        # The first snapshot (a stat of every file) is taken here, before READY=1.
        observer = PollingObserver(timeout=POLL_INTERVAL)
        observer.schedule(self.handler, root, recursive=True, event_filter=WATCHED_EVENTS)
        observer.start()
        self.modes[root] = "polling"
        return observer
