"""The processor thread: the only one that touches the database and the :class:`~tagger.scan.Scanner` (and
so the worker pool, kept for the daemon's life).

Each turn: a config reload if one was asked for; else the queued operations in order (``Library.move`` /
``Library.mark_gone``: no re-classification); else up to ``BATCH_SIZE`` files whose quiet period has passed,
through ``Scanner.run`` (which skips unchanged files, follows moves by fingerprint, classifies the rest);
else one chunk of the catch-up / reconcile walk; else sleep until the next due time. The stop flag is
checked after every track. After ``POOL_IDLE_SECONDS`` without work the worker processes are stopped
(memory back to the system); the next change starts them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tagger.config import Settings, WatchSettings
from tagger.daemon.events import FileDeleted, FileMoved, FolderAppeared, FolderDeleted, FolderMoved, Operation
from tagger.daemon.playlists import PlaylistRefresher
from tagger.daemon.queue import ChangeQueue
from tagger.daemon.reconcile import Reconciler, mark_vanished
from tagger.daemon.roots import Roots
from tagger.daemon.status import STATUS_INTERVAL, Progress
from tagger.errors import DatabaseError, ModelError
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store.queries import tracks_under
from tagger.systemd import Notifier
from tagger.track import Outcome, TrackReport
from tagger.walk import iter_audio_files

log = logging.getLogger("tagger.daemon")

BATCH_SIZE = 64  # ready files per Scanner.run call (one known-states query per batch)
POOL_IDLE_SECONDS = 600.0  # stop the worker processes after this long without work


def tag_options(settings: Settings, base: TagOptions) -> TagOptions:
    """``base`` (dry-run/verify from the command line) with the settings a reload may change."""
    return TagOptions.from_settings(settings, dry_run=base.dry_run, verify=base.verify)


class Processor:
    """Takes work from ``queue`` and the walks, records it through ``library``; :meth:`start` runs it in its thread.

    ``reload`` gives the settings a SIGHUP asks for; ``status_line`` is told to systemd when a reload is done.
    """

    def __init__(
        self,
        library: Library,
        scanner: Scanner,
        queue: ChangeQueue,
        roots: Roots,
        watch: WatchSettings,
        progress: Progress,
        *,
        follow_symlinks: bool,
        reload: Callable[[], Settings] | None,
        notifier: Notifier,
        status_line: Callable[[], str],
        playlists: PlaylistRefresher | None = None,
    ) -> None:
        self.library = library
        self.playlists = playlists  # kept current, batched (tagger.daemon.playlists)
        self.scanner = scanner
        self.queue = queue
        self.roots = roots
        self.watch = watch
        self.progress = progress
        self.follow_symlinks = follow_symlinks
        self.reconciler = Reconciler(roots.paths, follow_symlinks, self._walk_error)
        self.stop = threading.Event()
        self.caught_up = threading.Event()
        self.reload_requested = False  # set by a signal handler: a plain flag, no lock
        self.crashed = False
        self.heartbeat = time.monotonic()
        self.busy = False
        self.pool_held = False  # worker processes may be running (they start with the first classification)
        self._idle_since = time.monotonic()
        self._reload_settings = reload
        self._notifier = notifier
        self._status_line = status_line
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control (main thread)
    def start(self, force_catch_up: bool) -> None:
        """The catch-up walk first: it tags what changed while the daemon was stopped."""
        self.reconciler.start("catch-up", force=force_catch_up)
        self.progress.state = "catching-up"
        self._thread = threading.Thread(target=self._loop, name="tagger-processor", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        self.stop.set()
        self.queue.wake.set()

    def request_reload(self) -> None:
        self.reload_requested = True
        self.queue.wake.set()

    def is_idle(self) -> bool:
        return self.queue.is_empty() and self.caught_up.is_set() and self.reconciler.walk is None and not self.busy

    def shutdown(self, grace: float) -> None:
        """Let the track in hand finish (``grace`` seconds at most); the rest of the queue is left."""
        self.request_stop()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(grace)
            if self._thread.is_alive():
                log.warning("the track in hand did not finish in %.0f s; abandoned (redone next start)", grace)
        else:
            self.scanner.close()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                self.queue.wake.clear()
                self.heartbeat = time.monotonic()
                if self.playlists is not None:
                    self.playlists.maybe_refresh(time.monotonic())
                if self.reload_requested:
                    self._reload()
                if self._apply_operations():
                    continue
                batch, next_due = self.queue.ready_batch(BATCH_SIZE)
                if batch:
                    self._run_batch(batch)
                    continue
                if self.reconciler.walk is None and self.reconciler.start_if_due(self.queue.take_overflowed()):
                    self.progress.state = "reconciling"
                    continue
                if self.reconciler.walk is not None:
                    self._walk_step()
                    continue
                if self.busy:
                    self.busy, self._idle_since = False, time.monotonic()
                elif self.pool_held and time.monotonic() - self._idle_since > POOL_IDLE_SECONDS:
                    self.scanner.close()  # ~150 MB per idle worker; the next change starts them again (seconds)
                    self.pool_held = False
                    log.debug("idle for %.0f s: worker processes stopped", POOL_IDLE_SECONDS)
                timeout = STATUS_INTERVAL if next_due is None else max(0.01, min(next_due - time.monotonic(), 1.0))
                if self.reconciler.next_due is not None:
                    timeout = min(timeout, max(0.01, self.reconciler.next_due - time.monotonic()))
                self.queue.wake.wait(timeout)
        except (ModelError, DatabaseError) as error:  # already one line naming the model or the database
            log.error("%s; exiting", error)
            self._crashed()
        except Exception:
            log.exception("the processor failed; exiting so that the service manager restarts us")
            self._crashed()
        finally:
            self.busy = False
            self.scanner.close()

    def _crashed(self) -> None:
        self.crashed = True
        self.progress.errors += 1
        self.stop.set()

    # ------------------------------------------------------------------ operations
    def _apply_operations(self) -> bool:
        operations = self.queue.take_operations()
        if not operations:
            return False
        self.busy = True
        dry_run = self.library.options.dry_run
        for operation in operations:
            if self.stop.is_set():
                return True  # a deletion or move left undone is found by the next catch-up
            try:
                self._apply(operation, dry_run)
            except Exception:
                log.exception("%s failed", operation)
                self.progress.errors += 1
            self.heartbeat = time.monotonic()
        return True

    def _apply(self, operation: Operation, dry_run: bool) -> None:
        match operation:
            case FolderAppeared(folder):  # its files may have come with it
                for _folder, file in iter_audio_files([folder], self.follow_symlinks, self._walk_error):
                    self.queue.touch(str(file))
            case _ if dry_run:
                log.info("would update the database: %s", operation)
            case FileMoved(source, destination) if destination is not None:
                if self.library.move(source, destination, self.roots.root_of(destination)):
                    self._note(TrackReport(Path(destination), Outcome.MOVED, reason=f"from {source}"))
            case FileMoved(source=path) | FileDeleted(path=path):
                self._mark_gone(path)
            case FolderMoved(source, destination):
                self._move_folder(source, destination)
            case FolderDeleted(folder):
                for track in tracks_under(self.library.db, folder):
                    self._mark_gone(track)

    def _move_folder(self, source: str, destination: str | None) -> None:
        tracks = tracks_under(self.library.db, source)
        if destination is None:  # out of the roots
            for track in tracks:
                self._mark_gone(track)
            return
        moved = 0
        for track in tracks:
            target = str(Path(destination) / Path(track).relative_to(source))
            moved += self.library.move(track, target, self.roots.root_of(target))
        if moved:
            self.progress.moved_folder(moved, source, destination)

    def _mark_gone(self, path: str) -> bool:
        """Mark a deleted track gone in the database; count and log it if it was not already."""
        if not self.library.mark_gone(path):
            return False
        self.progress.gone(path)
        if self.playlists is not None:
            self.playlists.note_change()
        return True

    def _note(self, report: TrackReport) -> None:
        self.progress.note(report)
        if self.playlists is not None and report.outcome is not Outcome.SKIPPED:
            self.playlists.note_change()

    # ------------------------------------------------------------------ classification
    def _run_batch(self, batch: list[tuple[Path, Path]], force: bool = False) -> None:
        """``Scanner.run`` over ``batch``; a crash in it is isolated to one file by retrying one by one."""
        self.busy = self.pool_held = True
        self.progress.in_progress = len(batch)
        done: set[Path] = set()
        try:
            for report in self.scanner.run(batch, force=force):
                done.add(report.path)
                self._note(report)
                self.progress.in_progress = len(batch) - len(done)
                self.heartbeat = time.monotonic()
                if self.stop.is_set():
                    return
        except KeyboardInterrupt:
            # a worker caught the terminal's Ctrl-C (it reaches the whole process group): we are stopping too
            self.request_stop()
        except ModelError:
            raise  # no file's fault: the workers cannot load the model, so every track would fail
        except Exception:
            rest = [(root, path) for root, path in batch if path not in done]
            if len(batch) == 1:
                log.exception("%s: unexpected error", batch[0][1])
                self.progress.errors += 1
                self.progress.last(str(batch[0][1]), "failed", "unexpected error (see the log)")
            else:
                for item in rest:
                    if self.stop.is_set():
                        return
                    self._run_batch([item], force)
        finally:
            self.progress.in_progress = 0

    # ------------------------------------------------------------------ walks
    def _walk_step(self) -> None:
        walk = self.reconciler.walk
        assert walk is not None
        self.busy = True
        chunk = walk.next_chunk()
        if chunk is None:
            self._finish_walk()
            return
        before = Counter(self.progress.counts)
        self._run_batch(chunk, force=walk.force)
        walk.done(chunk, self.progress.counts - before)

    def _finish_walk(self) -> None:
        dry_run = self.library.options.dry_run
        vanished = 0 if dry_run else mark_vanished(self.library, self.roots.paths, self._mark_gone)
        self.reconciler.finish(vanished, self.watch.reconcile_hours)
        self.progress.state = "watching"
        self.caught_up.set()

    def _walk_error(self, folder: Path, reason: str) -> None:
        """A folder a walk could not read: said in the log and counted, the walk goes on."""
        log.warning("%s: %s", folder, reason)
        self.progress.errors += 1

    # ------------------------------------------------------------------ reload
    def _reload(self) -> None:
        self.reload_requested = False
        if self._reload_settings is None:
            return
        self._notifier.reloading()
        try:
            settings = self._reload_settings()
            library = Library(self.library.db, self.library.card, tag_options(settings, self.library.options))
        except Exception as error:  # a typo in the config must not stop the daemon
            log.error("config reload failed, keeping the current settings: %s", error)
            self.progress.config_error = str(error)
            self.progress.errors += 1
            self._notifier.ready(self._status_line())
            return
        self.progress.config_error = None
        redecide = library.options.decided_with != self.library.options.decided_with
        self.library = library
        self.scanner.reconfigure(library, settings.max_windows)
        restart = settings.watch.polling != self.watch.polling
        self.watch = replace(settings.watch, polling=self.watch.polling)
        self.queue.quiet_seconds, self.queue.limit = self.watch.quiet_seconds, self.watch.queue_limit
        options = library.options
        log.info(
            "config reloaded: policy %s, min confidence %.2f, top %d, quiet %.1f s, reconcile every %s h%s",
            options.policy.value,
            options.min_confidence,
            options.top_k,
            self.watch.quiet_seconds,
            self.watch.reconcile_hours,
            " (polling change needs a restart)" if restart else "",
        )
        if redecide and self.reconciler.walk is None:  # tracks decided with the old options: re-decided, not decoded
            self.reconciler.start("applying the new options")
            self.progress.state = "reconciling"
        self._notifier.ready(self._status_line())
