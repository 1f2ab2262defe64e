"""``tagger watch``: keep a library tagged as files arrive, change, move and disappear.

events -> queue -> batch -> scanner -> record, one room each:

* :mod:`~tagger.daemon.events`: watchdog events -> typed changes, in the observer threads
  (:mod:`~tagger.daemon.roots`: one observer per root, missing roots re-watched)
* :mod:`~tagger.daemon.queue`: debounce (a file is read once it has been quiet) and bounds (overflow -> a walk)
* :mod:`~tagger.daemon.processor`: the one thread with the database: operations in order, then batches of quiet
  files through the :class:`~tagger.scan.Scanner` (record + tag write, the same step as ``tagger scan``)
* :mod:`~tagger.daemon.reconcile`: the walk at start, every ``reconcile_hours`` and after an overflow
* :mod:`~tagger.daemon.status`: the status file ``tagger status`` reads

:class:`Daemon`, the main thread, starts and stops them, handles signals and talks to systemd.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tagger.config import Settings, WatchSettings
from tagger.daemon.events import Change, FolderAppeared, Handler, RootChanged, Written
from tagger.daemon.playlists import PlaylistRefresher
from tagger.daemon.processor import Processor
from tagger.daemon.queue import ChangeQueue
from tagger.daemon.roots import Roots
from tagger.daemon.status import STATUS_INTERVAL, Progress, Status, StatusFile, iso, status_file_for
from tagger.record import Library
from tagger.scan import Scanner
from tagger.store.db import masked_url
from tagger.systemd import Notifier
from tagger.walk import canonical_path

__all__ = ["Daemon"]

log = logging.getLogger("tagger.daemon")

STALL_SECONDS = 600.0  # no progress this long (one track, one chunk): stop the watchdog keep-alives
STOP_GRACE = 20.0  # seconds the main thread waits for the track in hand on stop


class Daemon:
    """Watches ``roots`` and keeps ``library`` and the files' tags up to date.

    Start: ``Library.recover()``, observers started (nothing is missed from here on), ``READY=1``, then the
    catch-up walk. The main thread then sends ``STATUS=`` and ``WATCHDOG=1`` (withheld once the processor has
    made no progress for ``STALL_SECONDS``, so systemd restarts a hung daemon) and writes the status file.
    SIGTERM/SIGINT: observers stop, the track in hand is finished, the rest of the queue is abandoned (the next
    start's catch-up redoes it). SIGHUP: the processor re-reads the config between tracks and keeps the queue;
    model, database and roots need a restart; a config that fails :mod:`tagger.config`'s checks is refused
    (settings kept, ``config_error`` in the status).
    """

    def __init__(
        self,
        library: Library,
        roots: Sequence[str | Path],
        watch: WatchSettings | None = None,
        *,
        workers: int = 1,
        threads: int = 1,
        recorders: int = 1,
        max_windows: int | None = None,
        follow_symlinks: bool = False,
        force_catch_up: bool = False,
        isolate: bool = True,
        reload: Callable[[], Settings] | None = None,
        notifier: Notifier | None = None,
        status_path: Path | None = None,
        playlists: PlaylistRefresher | None = None,
    ) -> None:
        watch = watch or WatchSettings()
        self.roots = [str(canonical_path(r)) for r in roots]
        self.notifier = notifier or Notifier()
        self.started = time.time()
        self.progress = Progress()
        self.force_catch_up = force_catch_up
        self.watched = Roots(self.roots, Handler(self.roots, self._on_change), watch.polling)
        self.queue = ChangeQueue(watch.quiet_seconds, watch.queue_limit, self.watched.root_of)
        scanner = Scanner(
            library,
            workers=workers,
            threads=threads,
            recorders=recorders,
            max_windows=max_windows,
            follow_symlinks=follow_symlinks,
            isolate=isolate,
        )
        self.processor = Processor(
            library,
            scanner,
            self.queue,
            self.watched,
            watch,
            self.progress,
            follow_symlinks=follow_symlinks,
            reload=reload,
            notifier=self.notifier,
            status_line=self._status_line,
            playlists=playlists,
        )
        self.caught_up = self.processor.caught_up
        self.status_file = StatusFile(status_path or status_file_for(library.db.url), self.notifier)
        self.crashed = False  # could not start (the processor says for itself)
        self._signal_stop: int | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None

    # ------------------------------------------------------------------ what it has done
    @property
    def library(self) -> Library:
        return self.processor.library  # a reload replaces it

    @property
    def counts(self) -> Counter[str]:
        return self.progress.counts

    @property
    def errors(self) -> int:
        return self.progress.errors

    @property
    def last_track(self) -> dict[str, Any] | None:
        return self.progress.last_track

    @property
    def last_reconcile(self) -> float | None:
        return self.processor.reconciler.last

    @property
    def queue_length(self) -> int:
        return len(self.queue)

    # ------------------------------------------------------------------ public control
    def request_stop(self) -> None:
        """Stop accepting events and let the processor finish the track in hand."""
        self.processor.request_stop()

    def request_reload(self) -> None:
        """Re-read the config at the processor's next turn (between tracks, queue kept)."""
        self.processor.request_reload()

    def is_idle(self) -> bool:
        """Caught up, nothing queued, nothing in hand (for tests and embedding)."""
        return self.processor.is_idle()

    def wait_idle(self, timeout: float, settle: float = 0.0) -> bool:
        """Block until :meth:`is_idle` has held for ``settle`` seconds; False on timeout."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            if self.is_idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return True
            else:
                idle_since = None
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Start, supervise until stopped, shut down. Exit code: 0 on a requested stop, 1 on a crash."""
        self._install_signal_handlers()
        try:
            self.start()
        except Exception:
            log.exception("cannot start")
            self.crashed = True
            self._shutdown()
            return 1
        try:
            self._supervise()
        finally:
            self._shutdown()
        return 1 if self.crashed or self.processor.crashed else 0

    def start(self) -> None:
        """Recover interrupted writes, start observers and the processor, tell systemd we are ready."""
        library = self.processor.library
        if not library.options.dry_run and (recovered := library.recover()):
            log.info("recovered %d interrupted tag write(s)", recovered)
        self.watched.start()
        watched = ", ".join(f"{root} ({mode})" for root, mode in self.watched.modes.items())
        log.info("watching %s, quiet period %.1f s", watched, self.queue.quiet_seconds)
        self.processor.start(self.force_catch_up)
        self.notifier.ready(self._status_line())
        self._write_status(force=True)

    def _on_change(self, change: Change) -> None:
        """Observer threads: cheap (a stat at most), no database."""
        if self.processor.stop.is_set():
            return
        match change:
            case RootChanged():
                self.watched.check_soon()
            case Written(path):
                self.queue.touch(path)
            case _:
                self.queue.put(change)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # in-process use (tests): the caller stops us with request_stop()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wakeup = (reader, writer)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

        # Handlers only set flags: taking a lock inside a signal handler can deadlock the main thread.
        def on_stop(signum: int, _frame: object) -> None:
            self._signal_stop = signum

        def on_hup(_signum: int, _frame: object) -> None:
            self.processor.reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _supervise(self) -> None:
        interval = STATUS_INTERVAL
        if self.notifier.watchdog_interval:
            interval = min(interval, self.notifier.watchdog_interval / 4)
        stalled = False
        processor = self.processor
        while not processor.stop.is_set():
            self._sleep(interval)
            if self._signal_stop is not None:
                log.info("%s: stopping", signal.Signals(self._signal_stop).name)
                self.request_stop()
                break
            if processor.reload_requested:
                self.queue.wake.set()
            if processor.stop.is_set() or not processor.is_alive():
                break  # a stop request, or the processor died (it sets ``crashed`` itself)
            healthy = time.monotonic() - processor.heartbeat < STALL_SECONDS
            if not healthy and not stalled:
                log.error("no progress for %.0f s: withholding watchdog keep-alives", STALL_SECONDS)
            stalled = not healthy
            if self.notifier.watchdog_interval and healthy:
                self.notifier.watchdog()
            if time.monotonic() >= self.watched.next_check:
                self.watched.check(self._walk_root)
            self._write_status()

    def _walk_root(self, root: str) -> None:
        self.queue.put(FolderAppeared(root))

    def _sleep(self, seconds: float) -> None:
        if self._wakeup is None:
            self.processor.stop.wait(seconds)
            return
        reader = self._wakeup[0]
        with contextlib.suppress(OSError, ValueError):
            if select.select([reader], [], [], seconds)[0]:
                while reader.recv(64):
                    pass

    def _shutdown(self) -> None:
        self.progress.state = "stopping"
        self.processor.request_stop()
        self.notifier.stopping("stopping: finishing the track in hand")
        self.watched.stop()
        deadline = time.monotonic() + STOP_GRACE
        self.processor.shutdown(STOP_GRACE)
        self.watched.join(deadline)
        self.progress.state = "crashed" if self.crashed or self.processor.crashed else "stopped"
        if abandoned := len(self.queue):
            log.info("%d queued change(s) left for the next start's catch-up", abandoned)
        self._write_status(force=True)
        self.notifier.close()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for sock in self._wakeup:
                sock.close()
            self._wakeup = None
        self.processor.library.db.dispose()
        log.info("stopped (%s)", self.progress.summary())

    # ------------------------------------------------------------------ status
    def _status_line(self) -> str:
        queue, errors = self.queue_length, self.progress.errors
        walk = self.processor.reconciler.walk
        if walk is not None:
            return f"{walk.reason}: {walk.files} files checked; queue {queue}; {errors} errors"
        missing = f" ({len(self.watched.missing)} missing)" if self.watched.missing else ""
        return f"watching {len(self.roots)} root(s){missing}; queue {queue}; {self.progress.summary()}; {errors} errors"

    def status(self) -> Status:
        """What ``tagger status`` shows."""
        progress, options, walk = self.progress, self.library.options, self.processor.reconciler.walk
        return {
            "pid": os.getpid(),
            "state": progress.state,
            "started": iso(self.started),
            "roots": self.roots,
            "database": masked_url(self.library.db.url),
            "observers": dict(self.watched.modes),
            "missing_roots": {root: iso(since) for root, since in dict(self.watched.missing).items()},
            "queue": self.queue_length,
            "in_progress": progress.in_progress,
            "catch_up_files": walk.files if walk is not None else None,
            "last_track": progress.last_track,
            "errors": progress.errors,
            "counts": dict(progress.counts),
            "last_reconcile": iso(self.last_reconcile),
            "policy": options.policy.value,
            "min_confidence": options.min_confidence,
            "config_error": progress.config_error,
        }

    def _write_status(self, force: bool = False) -> None:
        if force or self.status_file.due():
            self.status_file.write(self.status(), self._status_line(), force)
