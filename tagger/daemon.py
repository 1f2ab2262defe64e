"""``tagger watch``: keep a library tagged as files arrive, change, move and disappear.

Threads (one lock, ``Daemon._lock``, guards the queue; only the processor touches the database):

* **observers** (watchdog, one per root so a root that cannot get inotify watches falls back to
  polling alone): each event becomes, at the cost of one ``stat``, either an entry in the
  *pending* table (path -> root, size+mtime seen, due time) or an *operation* (move, deletion,
  new folder to walk). Both are bounded by ``watch.queue_limit``; past it events are dropped
  and a full reconcile is scheduled instead, so a million-file copy cannot exhaust memory.
* **processor**: owns the :class:`~tagger.scan.Scanner` (and so the worker pool, kept for the
  daemon's life) and the database. Loop: apply the operations in order (``Library.move`` /
  ``Library.mark_gone``: no re-classification); then take up to ``BATCH_SIZE`` pending files
  whose quiet period has passed *and* whose size and mtime did not change since their last
  event and feed them to ``Scanner.run`` (which skips unchanged files, follows moves by
  fingerprint, classifies the rest); otherwise advance the catch-up / reconcile walk by one
  chunk; otherwise sleep until the next due time. The stop flag is checked after every track.
  After ``POOL_IDLE_SECONDS`` without work the worker processes are stopped (memory back to
  the system); the next change starts them again.
* **main** (:meth:`Daemon.run`): signals, sd_notify (``READY=1``, ``STATUS=``, ``WATCHDOG=1``,
  ``STOPPING=1``) and the status file. Keep-alives stop when the processor has made no
  progress for ``STALL_SECONDS``, so systemd restarts a hung daemon.

Debounce: every event re-arms the file's due time to ``now + quiet_seconds``; at the due time
the file is stat-ed again and only a size+mtime equal to the last event's (and an mtime older
than the quiet period) lets it through. A slow copy is therefore read once, after it ends.
The tag writer's own rewrite (a hidden temp file renamed over the track) arrives as a move onto
the track; the library has already refreshed the track's size/mtime, so ``Scanner.run`` triages
it as unchanged: the daemon relies on that and never re-classifies its own writes.

Start: ``Library.recover()``, observers started (nothing is missed from here on), ``READY=1``,
then a catch-up walk = ``Scanner.run`` over every file under the roots in chunks (tags what
changed while stopped), then tracks under the roots whose files vanished are marked gone (not
for a root that is missing or empty: an unmounted share must not mark a library gone).
The same walk repeats every ``watch.reconcile_hours`` and after a queue overflow.

Roots: the main thread stats each root every ``ROOT_CHECK_SECONDS`` (and at once when its observer
reports it deleted: the observer stops watching then). A missing root is logged ("root missing") and
listed in the status (``missing_roots``), its tracks kept; once it is back, or is another folder than
the one watched (deleted and recreated, mounted or unmounted), it gets a new observer and a walk.

Stop (SIGTERM/SIGINT): observers stop, the track in hand is finished, the rest of the queue is
abandoned (the next start's catch-up redoes it). SIGHUP re-reads the config (policy,
thresholds, quiet period...) and keeps the queue; model, database and roots need a restart.
A config that fails the checks of :mod:`tagger.config` is refused: settings kept, one log line,
``config_error`` in the status. New tagging options start a walk that re-decides tracks from
their stored results (no decoding).

Status file: written atomically (temp + rename) about once a second. For an SQLite database it
lies beside the database file as ``<db file>.status.json`` (the service's ``StateDirectory``,
writable under ``ProtectSystem=strict``, and found by ``tagger status`` from the same ``--db`` /
``$TAGGER_DB``); for any other database URL in ``$XDG_STATE_HOME/genre-tagger/status.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from stat import S_ISDIR
from typing import Any

from platformdirs import user_state_dir
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
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from tagger.config import Settings, WatchSettings
from tagger.errors import DatabaseError, ModelError
from tagger.library import FileState, Library, Outcome, TagOptions, TrackReport
from tagger.playlists import PlaylistRefresher
from tagger.scan import Scanner
from tagger.sdnotify import Notifier
from tagger.store import TrackStatus
from tagger.walk import canonical_path, is_candidate, iter_audio_files

log = logging.getLogger("tagger.daemon")

BATCH_SIZE = 64  # ready files per Scanner.run call (one known-states query per batch)
CATCHUP_CHUNK = 256  # files per Scanner.run call during the catch-up walk
STALL_SECONDS = 600.0  # no progress this long (one track, one chunk): stop the watchdog keep-alives
STATUS_INTERVAL = 1.0  # seconds between status-file / STATUS= refreshes
POLL_INTERVAL = 10.0  # seconds between the polling observer's snapshots (each stats every file)
POOL_IDLE_SECONDS = 600.0  # stop the worker processes after this long without work
STOP_GRACE = 20.0  # seconds the main thread waits for the track in hand on stop
ROOT_CHECK_SECONDS = 5.0  # seconds between stats of each root: a deleted, recreated or remounted root is re-watched

# Only these reach the handler: opens and read-only closes (our own decoding) never wake the daemon.
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


# ---------------------------------------------------------------------------- status file
def status_file_for(db_url: str) -> Path:
    """Where the daemon for ``db_url`` writes its status (see the module docstring)."""
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:///:memory:"):
        database = Path(db_url.removeprefix("sqlite:///").split("?", 1)[0])
        return database.with_name(database.name + ".status.json")
    return Path(user_state_dir("genre-tagger")) / "status.json"


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Readers never see a half-written file: temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file plus ``running`` (is its pid alive?); None if there is none."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    data["running"] = data.get("state") not in ("stopped", "crashed") and _pid_alive(data.get("pid"))
    if data.get("state") not in ("stopped", "crashed") and not data["running"]:
        data["state"] = "dead"  # killed without a chance to say so (SIGKILL, power loss)
    return data


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, owned by the service user
    except OSError:
        return False
    return True


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _identity(folder: str) -> tuple[int, int] | None:
    """(device, inode) of ``folder``; None if it is not there (or not a folder)."""
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if S_ISDIR(stat.st_mode) else None


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


# ---------------------------------------------------------------------------- logging
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """``<N>message``: journald reads the syslog priority prefix and adds its own timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{super().format(record)}"


def under_journal(environ: dict[str, str] | None = None) -> bool:
    """Started by systemd (``$INVOCATION_ID``), or stderr is the journal stream (``$JOURNAL_STREAM``)."""
    env = os.environ if environ is None else environ
    if env.get("INVOCATION_ID"):
        return True
    stream = env.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return bool(stream)
    return (stat.st_dev, stat.st_ino) == (device, inode)


def configure_logging(verbose: bool = False, journal: bool | None = None) -> None:
    """stderr logging: journald style under systemd, timestamps otherwise; ``verbose`` adds per-file lines."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journal() if journal is None else journal:
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tagger").setLevel(logging.DEBUG if verbose else logging.INFO)


# ---------------------------------------------------------------------------- the daemon
@dataclass
class _Pending:
    """A file waiting for its quiet period; the whole queue holds only these (no audio, no events)."""

    root: str
    state: FileState | None
    due: float  # time.monotonic()


Operation = tuple[str, str, str]  # (kind, path, destination or "")


def tag_options(settings: Settings, base: TagOptions) -> TagOptions:
    """``base`` (dry-run/verify from the command line) with the settings a reload may change."""
    return TagOptions.from_settings(settings, dry_run=base.dry_run, verify=base.verify)


def _chunks(items: Iterable[tuple[Path, Path]], size: int) -> Iterator[list[tuple[Path, Path]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Handler(FileSystemEventHandler):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self.daemon.on_event(event)
        except Exception:  # an observer thread must never die
            log.exception("event %s not handled", event)


class Daemon:
    """Watches ``roots`` and keeps ``library`` and the files' tags up to date (see the module docstring)."""

    def __init__(
        self,
        library: Library,
        roots: Sequence[str | Path],
        watch: WatchSettings | None = None,
        *,
        workers: int = 1,
        threads: int = 1,
        max_windows: int | None = None,
        follow_symlinks: bool = False,
        force_catch_up: bool = False,
        isolate: bool = True,
        reload: Callable[[], Settings] | None = None,
        notifier: Notifier | None = None,
        status_path: Path | None = None,
        playlists: PlaylistRefresher | None = None,
    ) -> None:
        self.library = library
        self.playlists = playlists  # kept current, batched (tagger.playlists)
        self.roots = [str(canonical_path(r)) for r in roots]
        self.watch = watch or WatchSettings()
        self.follow_symlinks = follow_symlinks
        self.force_catch_up = force_catch_up
        self._reload_settings = reload
        self.notifier = notifier or Notifier()
        self.status_path = status_path or status_file_for(library.db.url)
        self.scanner = Scanner(
            library,
            workers=workers,
            threads=threads,
            max_windows=max_windows,
            follow_symlinks=follow_symlinks,
            isolate=isolate,
        )

        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._ops: deque[Operation] = deque()
        self._overflowed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload_requested = False
        self._signal_stop: int | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None

        self._observers: dict[str, BaseObserver] = {}
        self.observer_modes: dict[str, str] = {}  # root -> "inotify" | "polling"
        self._root_ids: dict[str, tuple[int, int]] = {}  # root -> (st_dev, st_ino) its observer watches
        self.missing_roots: dict[str, float] = {}  # root -> since when (time.time())
        self._next_root_check = 0.0
        self._processor: threading.Thread | None = None
        self._walk: Iterator[list[tuple[Path, Path]]] | None = None
        self._walk_reason = ""
        self._walk_files = 0
        self._next_reconcile: float | None = None
        self._walk_force = False
        self._walk_started = 0.0
        self._walk_counts: Counter[str] = Counter()

        # progress, read by the main thread for status
        self.state = "starting"
        self.started = time.time()
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self.last_track: dict[str, Any] | None = None
        self.last_reconcile: float | None = None
        self.config_error: str | None = None  # why the last SIGHUP reload was refused (old settings kept)
        self.in_progress = 0
        self.caught_up = threading.Event()
        self.crashed = False
        self._heartbeat = time.monotonic()
        self._busy = False
        self._idle_since = time.monotonic()
        self._pool_held = False  # worker processes may be running (they start with the first classification)
        self._status_written: dict[str, Any] | None = None
        self._status_time = 0.0
        self._status_text = ""

    # ------------------------------------------------------------------ public control
    def request_stop(self) -> None:
        """Stop accepting events and let the processor finish the track in hand."""
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Re-read the config at the processor's next turn (between tracks, queue kept)."""
        self._reload_requested = True
        self._wake.set()

    @property
    def queue_length(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._ops)

    def is_idle(self) -> bool:
        """Caught up, nothing queued, nothing in hand (for tests and embedding)."""
        with self._lock:
            empty = not self._pending and not self._ops and not self._overflowed
        return empty and self.caught_up.is_set() and self._walk is None and not self._busy

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
        return 1 if self.crashed else 0

    def start(self) -> None:
        """Recover interrupted writes, start observers and the processor, tell systemd we are ready."""
        if not self.library.options.dry_run and (recovered := self.library.recover()):
            log.info("recovered %d interrupted tag write(s)", recovered)
        for root in self.roots:
            if _identity(root) is None:
                self._root_missing(root)
            else:
                self._observers[root] = self._start_observer(root)
        watched = ", ".join(f"{root} ({mode})" for root, mode in self.observer_modes.items())
        log.info("watching %s, quiet period %.1f s", watched, self.watch.quiet_seconds)
        self._next_root_check = time.monotonic() + ROOT_CHECK_SECONDS
        self._start_walk("catch-up", force=self.force_catch_up)
        self.state = "catching-up"
        self._processor = threading.Thread(target=self._process_loop, name="tagger-processor", daemon=True)
        self._processor.start()
        self.notifier.ready(self._status_line())
        self._write_status(force=True)

    def _start_observer(self, root: str) -> BaseObserver:
        identity = _identity(root)
        if identity is not None:
            self._root_ids[root] = identity
        handler = _Handler(self)
        if not self.watch.polling:
            observer: BaseObserver = Observer()
            observer.schedule(handler, root, recursive=True, event_filter=WATCHED_EVENTS)
            try:
                observer.start()
                self.observer_modes[root] = "inotify"
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
        observer.schedule(handler, root, recursive=True, event_filter=WATCHED_EVENTS)
        observer.start()
        self.observer_modes[root] = "polling"
        return observer

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
            self._reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _supervise(self) -> None:
        interval = STATUS_INTERVAL
        if self.notifier.watchdog_interval:
            interval = min(interval, self.notifier.watchdog_interval / 4)
        stalled = False
        while not self._stop.is_set():
            self._sleep(interval)
            if self._signal_stop is not None:
                log.info("%s: stopping", signal.Signals(self._signal_stop).name)
                self.request_stop()
                break
            if self._reload_requested:
                self._wake.set()
            if self._stop.is_set() or (self._processor is not None and not self._processor.is_alive()):
                break  # a stop request, or the processor died (it sets ``crashed`` itself)
            healthy = time.monotonic() - self._heartbeat < STALL_SECONDS
            if not healthy and not stalled:
                log.error("no progress for %.0f s: withholding watchdog keep-alives", STALL_SECONDS)
            stalled = not healthy
            if self.notifier.watchdog_interval and healthy:
                self.notifier.watchdog()
            if time.monotonic() >= self._next_root_check:
                self._check_roots()
            self._write_status()

    def _sleep(self, seconds: float) -> None:
        if self._wakeup is None:
            self._stop.wait(seconds)
            return
        reader = self._wakeup[0]
        with contextlib.suppress(OSError, ValueError):
            if select.select([reader], [], [], seconds)[0]:
                while reader.recv(64):
                    pass

    def _shutdown(self) -> None:
        self.state = "stopping"
        self._stop.set()
        self._wake.set()
        self.notifier.stopping("stopping: finishing the track in hand")
        for observer in self._observers.values():
            observer.stop()
        deadline = time.monotonic() + STOP_GRACE
        if self._processor is not None and self._processor.is_alive():
            self._processor.join(STOP_GRACE)
            if self._processor.is_alive():
                log.warning("the track in hand did not finish in %.0f s; abandoned (redone next start)", STOP_GRACE)
        else:
            self.scanner.close()
        for observer in self._observers.values():
            observer.join(max(0.1, deadline - time.monotonic()))
        self.state = "crashed" if self.crashed else "stopped"
        with self._lock:
            abandoned = len(self._pending) + len(self._ops)
        if abandoned:
            log.info("%d queued change(s) left for the next start's catch-up", abandoned)
        self._write_status(force=True)
        self.notifier.close()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for sock in self._wakeup:
                sock.close()
            self._wakeup = None
        self.library.db.dispose()
        log.info("stopped (%s)", self._summary())

    def _check_roots(self) -> None:
        """Main thread: a root that vanished is reported (its tracks are kept: an unmounted disk is
        not a deleted library); once it is back, or is another folder than the one watched (deleted
        and recreated, mounted or unmounted), it gets a new observer and is walked for what came meanwhile."""
        self._next_root_check = time.monotonic() + ROOT_CHECK_SECONDS
        for root in self.roots:
            identity = _identity(root)
            if identity is None:
                self._root_missing(root)
                continue
            observer = self._observers.get(root)
            alive = observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)
            if alive and identity == self._root_ids.get(root) and root not in self.missing_roots:
                continue
            since = self.missing_roots.pop(root, None)
            if observer is not None:
                observer.stop()
                observer.join(5)
            try:
                self._observers[root] = self._start_observer(root)
            except OSError as error:  # gone again already, or no permission yet: the next check retries
                log.warning("%s: cannot watch it yet: %s", root, error)
                self._observers.pop(root, None)
                self.missing_roots[root] = since or time.time()
                continue
            gap = f"missing for {time.time() - since:.0f} s" if since is not None else "replaced"
            log.info("root back: %s (%s); watching it again (%s), catching up", root, gap, self.observer_modes[root])
            self._push(("walk", root, ""))

    def _root_missing(self, root: str) -> None:
        if root not in self.missing_roots:
            self.missing_roots[root] = time.time()
            log.warning("root missing: %s (deleted or not mounted); its tracks are kept, watched again once back", root)

    # ------------------------------------------------------------------ observer side (any thread)
    def root_of(self, path: str) -> str | None:
        """The (longest) root ``path`` lies under, or None."""
        best: str | None = None
        for root in self.roots:
            if (path == root or path.startswith(root.rstrip(os.sep) + os.sep)) and (
                best is None or len(root) > len(best)
            ):
                best = root
        return best

    def on_event(self, event: FileSystemEvent) -> None:
        """Turn one watchdog event into queue entries; cheap (a stat at most), no database."""
        if self._stop.is_set():
            return
        source = os.fsdecode(event.src_path)
        destination = os.fsdecode(event.dest_path) if event.dest_path else ""
        kind = event.event_type
        log.debug(
            "event %s%s %s%s",
            kind,
            " dir" if event.is_directory else "",
            source,
            f" -> {destination}" * bool(destination),
        )
        if event.is_directory:
            if kind in ("deleted", "moved") and source in self.roots:
                self._next_root_check = 0.0  # the observer has stopped watching it: look now
                return
            if kind == "created":
                self._push(("walk", source, ""))
            elif kind == "deleted":
                self._drop_pending_under(source)
                self._push(("gone-dir", source, ""))
            elif kind == "moved":
                inside = bool(destination) and self.root_of(destination) is not None
                self._drop_pending_under(source)
                self._push(("move-dir", source, destination if inside else ""))
                if inside:
                    self._push(("walk", destination, ""))
            return
        if kind in ("created", "modified", "closed"):
            if is_candidate(source):
                self.touch(source)
        elif kind == "deleted":
            with self._lock:
                self._pending.pop(source, None)
            if is_candidate(source):
                self._push(("gone", source, ""))
        elif kind == "moved":
            with self._lock:
                self._pending.pop(source, None)
            keep = bool(destination) and is_candidate(destination) and self.root_of(destination) is not None
            if is_candidate(source):
                self._push(("move", source, destination if keep else ""))
            if keep:
                self.touch(destination)

    def touch(self, path: str) -> None:
        """(Re)start ``path``'s quiet period, remembering its size+mtime now."""
        root = self.root_of(path)
        if root is None:
            return
        try:
            state = FileState.of(path)
        except OSError:
            return  # already gone again: its deletion or move event follows
        due = time.monotonic() + self.watch.quiet_seconds
        with self._lock:
            entry = self._pending.pop(path, None)
            if entry is None and len(self._pending) >= self.watch.queue_limit:
                self._overflow()
                return
            self._pending[path] = _Pending(root, state, due)  # re-inserted: the dict stays in event order
        self._wake.set()

    def _push(self, operation: Operation) -> None:
        with self._lock:
            if len(self._ops) >= self.watch.queue_limit:
                self._overflow()
                return
            self._ops.append(operation)
        self._wake.set()

    def _overflow(self) -> None:
        """Called with the lock held: drop the event, a reconcile will find the change."""
        if not self._overflowed:
            log.warning("more than %d queued changes: dropping events, a full re-check follows", self.watch.queue_limit)
        self._overflowed = True

    def _drop_pending_under(self, folder: str) -> None:
        prefix = folder.rstrip(os.sep) + os.sep
        with self._lock:
            for path in [p for p in self._pending if p.startswith(prefix)]:
                del self._pending[path]

    # ------------------------------------------------------------------ processor thread
    def _process_loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self._heartbeat = time.monotonic()
                if self.playlists is not None:
                    self.playlists.maybe_refresh(time.monotonic())
                if self._reload_requested:
                    self._reload()
                if self._apply_operations():
                    continue
                batch, next_due = self._ready_batch()
                if batch:
                    self._run_batch(batch)
                    continue
                if self._walk is None and self._reconcile_due():
                    continue
                if self._walk is not None:
                    self._walk_step()
                    continue
                if self._busy:
                    self._busy, self._idle_since = False, time.monotonic()
                elif self._pool_held and time.monotonic() - self._idle_since > POOL_IDLE_SECONDS:
                    self.scanner.close()  # ~150 MB per idle worker; the next change starts them again (seconds)
                    self._pool_held = False
                    log.debug("idle for %.0f s: worker processes stopped", POOL_IDLE_SECONDS)
                timeout = STATUS_INTERVAL if next_due is None else max(0.01, min(next_due - time.monotonic(), 1.0))
                if self._next_reconcile is not None:
                    timeout = min(timeout, max(0.01, self._next_reconcile - time.monotonic()))
                self._wake.wait(timeout)
        except (ModelError, DatabaseError) as error:  # already one line naming the model or the database
            log.error("%s; exiting", error)
            self.crashed = True
            self.errors += 1
            self._stop.set()
        except Exception:
            log.exception("the processor failed; exiting so that the service manager restarts us")
            self.crashed = True
            self.errors += 1
            self._stop.set()
        finally:
            self._busy = False
            self.scanner.close()

    def _take_operations(self) -> list[Operation]:
        with self._lock:
            operations = list(self._ops)
            self._ops.clear()
        return operations

    def _apply_operations(self) -> bool:
        operations = self._take_operations()
        if not operations:
            return False
        self._busy = True
        dry_run = self.library.options.dry_run
        for kind, path, destination in operations:
            if self._stop.is_set():
                return True  # a deletion or move left undone is found by the next catch-up
            try:
                if kind == "walk":  # a folder created or moved in: its files may have come with it
                    for _folder, file in iter_audio_files([path], self.follow_symlinks, self._walk_error):
                        self.touch(str(file))
                elif dry_run:
                    log.info("would update the database: %s %s %s", kind, path, destination)
                elif kind == "move" and destination:
                    if self.library.move(path, destination, self.root_of(destination)):
                        self._note(TrackReport(Path(destination), Outcome.MOVED, reason=f"from {path}"))
                elif kind in ("move", "gone"):
                    self._mark_gone(path)
                elif kind == "move-dir":
                    self._move_folder(path, destination)
                elif kind == "gone-dir":
                    for track in self._tracks_under(path):
                        self._mark_gone(track)
            except Exception:
                log.exception("%s %s failed", kind, path)
                self.errors += 1
            self._heartbeat = time.monotonic()
        return True

    def _move_folder(self, source: str, destination: str) -> None:
        moved = 0
        for track in self._tracks_under(source):
            if not destination:
                self._mark_gone(track)
                continue
            target = destination.rstrip(os.sep) + track[len(source.rstrip(os.sep)) :]
            if self.library.move(track, target, self.root_of(target)):
                moved += 1
        if moved:
            self.counts[Outcome.MOVED.value] += moved
            self.last_track = {"path": destination, "outcome": "moved", "at": _iso(time.time()), "reason": ""}
            log.info("moved %d track(s): %s -> %s", moved, source, destination)

    def _tracks_under(self, folder: str) -> list[str]:
        prefix = folder.rstrip(os.sep) + os.sep
        return [
            path
            for path, (_, _, status) in self.library.known_states().items()
            if path.startswith(prefix) and status != TrackStatus.GONE
        ]

    def _ready_batch(self) -> tuple[list[tuple[Path, Path]], float | None]:
        """Files whose quiet period passed with size+mtime unchanged; and when the next one is due."""
        now = time.monotonic()
        due: list[tuple[str, _Pending]] = []
        next_due: float | None = None
        with self._lock:
            for path, entry in self._pending.items():
                if entry.due <= now:
                    if len(due) < BATCH_SIZE * 2:
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
                if state != entry.state or 0 <= age < self.watch.quiet_seconds:
                    # changed without an event (polling, a late event) or written very recently: wait more
                    wait = self.watch.quiet_seconds if state != entry.state else self.watch.quiet_seconds - age
                    entry.state, entry.due = state, time.monotonic() + wait
                    next_due = entry.due if next_due is None else min(next_due, entry.due)
                    continue
                if len(batch) >= BATCH_SIZE:
                    next_due = now
                    break
                del self._pending[path]
                batch.append((Path(entry.root), Path(path)))
        return batch, next_due

    def _run_batch(self, batch: list[tuple[Path, Path]], force: bool = False) -> None:
        """``Scanner.run`` over ``batch``; a crash in it is isolated to one file by retrying one by one."""
        self._busy = self._pool_held = True
        self.in_progress = len(batch)
        done: set[Path] = set()
        self.scanner.force = force
        try:
            for report in self.scanner.run(batch):
                done.add(report.path)
                self._note(report)
                self.in_progress = len(batch) - len(done)
                self._heartbeat = time.monotonic()
                if self._stop.is_set():
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
                self.errors += 1
                self.last_track = {
                    "path": str(batch[0][1]),
                    "outcome": "failed",
                    "at": _iso(time.time()),
                    "reason": "unexpected error (see the log)",
                }
            else:
                for item in rest:
                    if self._stop.is_set():
                        return
                    self._run_batch([item], force)
        finally:
            self.scanner.force = False
            self.in_progress = 0

    # ------------------------------------------------------------------ catch-up / reconcile
    def _start_walk(self, reason: str, force: bool = False) -> None:
        self._walk = _chunks(iter_audio_files(self.roots, self.follow_symlinks, self._walk_error), CATCHUP_CHUNK)
        self._walk_reason = reason
        self._walk_force = force
        self._walk_files = 0
        self._walk_started = time.monotonic()
        self._walk_counts = Counter()
        log.info("%s: checking every file under the roots", reason)

    def _walk_error(self, folder: Path, reason: str) -> None:
        """A folder a walk could not read: said in the log and counted, the walk goes on."""
        log.warning("%s: %s", folder, reason)
        self.errors += 1

    def _reconcile_due(self) -> bool:
        with self._lock:
            overflowed, self._overflowed = self._overflowed, False
        if overflowed:
            self._start_walk("reconcile after dropped events")
        elif self._next_reconcile is not None and time.monotonic() >= self._next_reconcile:
            self._start_walk("periodic reconcile")
        else:
            return False
        self.state = "reconciling"
        return True

    def _walk_step(self) -> None:
        assert self._walk is not None
        self._busy = True
        chunk = next(self._walk, None)
        if chunk is None:
            self._finish_walk()
            return
        before = Counter(self.counts)
        self._run_batch(chunk, force=self._walk_force)
        self._walk_files += len(chunk)
        self._walk_counts.update(self.counts - before)

    def _finish_walk(self) -> None:
        gone = 0 if self.library.options.dry_run else self._mark_vanished()
        took = time.monotonic() - self._walk_started
        changes = ", ".join(f"{n} {k}" for k, n in sorted(self._walk_counts.items())) or "nothing"
        log.info(
            "%s done in %.1f s: %d files (%s), %d vanished", self._walk_reason, took, self._walk_files, changes, gone
        )
        self._walk = None
        self.last_reconcile = time.time()
        hours = self.watch.reconcile_hours
        self._next_reconcile = time.monotonic() + hours * 3600 if hours and hours > 0 else None
        self.state = "watching"
        self.caught_up.set()

    def _mark_vanished(self) -> int:
        """Tracks under the roots whose files are gone; a missing or empty root is left alone."""
        vanished = self.library.vanished(self.roots)
        for root in vanished.unmounted:
            log.warning("%s is missing or empty (not mounted?): its tracks are not marked gone", root)
        return sum(self._mark_gone(path) for path in vanished.paths)

    # ------------------------------------------------------------------ reload
    def _reload(self) -> None:
        self._reload_requested = False
        if self._reload_settings is None:
            return
        self.notifier.reloading()
        try:
            settings = self._reload_settings()
            library = Library(self.library.db, self.library.card, tag_options(settings, self.library.options))
        except Exception as error:  # a typo in the config must not stop the daemon
            log.error("config reload failed, keeping the current settings: %s", error)
            self.config_error = str(error)
            self.errors += 1
            self.notifier.ready(self._status_line())
            return
        self.config_error = None
        redecide = library.options.decided_with != self.library.options.decided_with
        self.library = library
        self.scanner.library = library
        self.scanner.max_windows = settings.max_windows
        restart = settings.watch.polling != self.watch.polling
        self.watch = replace(settings.watch, polling=self.watch.polling)
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
        if redecide and self._walk is None:  # tracks decided with the old options: re-decided, not decoded
            self._start_walk("applying the new options")
            self.state = "reconciling"
        self.notifier.ready(self._status_line())

    # ------------------------------------------------------------------ progress
    def _note(self, report: TrackReport) -> None:
        outcome = report.outcome
        self.counts[outcome.value] += 1
        if self.playlists is not None and outcome is not Outcome.SKIPPED:
            self.playlists.note_change()
        if outcome is Outcome.SKIPPED:
            log.debug("skipped (unchanged since last seen) %s", report.path)
            return
        self.last_track = {
            "path": str(report.path),
            "outcome": outcome.value,
            "at": _iso(time.time()),
            "reason": report.reason,
        }
        if outcome is Outcome.FAILED:
            self.errors += 1
            log.warning("failed %s: %s", report.path, report.reason)
        elif outcome is Outcome.MOVED:
            log.info("moved %s (%s)", report.path, report.reason)
        elif outcome in (Outcome.TAGGED, Outcome.WOULD_TAG):
            confidence = f" ({report.confidence:.2f})" if report.confidence is not None else ""
            existing = ", ".join(report.existing) or "(none)"
            log.info("%s %s: %s -> %s%s", outcome.value, report.path, existing, ", ".join(report.proposed), confidence)
        else:  # kept / low-confidence / unchanged: classified, nothing written; noisy in a forced catch-up
            level = logging.DEBUG if outcome is Outcome.UNCHANGED else logging.INFO
            detail = f"file says {', '.join(report.existing) or '(none)'}, model says {', '.join(report.proposed)}"
            log.log(
                level, "%s %s: %s%s", outcome.value, report.path, detail, f" ({report.reason})" * bool(report.reason)
            )

    def _mark_gone(self, path: str) -> bool:
        """Mark a deleted track gone in the database; count and log it if it was not already."""
        if not self.library.mark_gone(path):
            return False
        if self.playlists is not None:
            self.playlists.note_change()
        self.counts["gone"] += 1
        self.last_track = {"path": path, "outcome": "gone", "at": _iso(time.time()), "reason": ""}
        log.info("gone %s", path)
        return True

    def _summary(self) -> str:
        return (
            ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()) if k != Outcome.SKIPPED.value) or "no changes"
        )

    def _status_line(self) -> str:
        queue = self.queue_length
        if self._walk is not None:
            return f"{self._walk_reason}: {self._walk_files} files checked; queue {queue}; {self.errors} errors"
        missing = f" ({len(self.missing_roots)} missing)" if self.missing_roots else ""
        return f"watching {len(self.roots)} root(s){missing}; queue {queue}; {self._summary()}; {self.errors} errors"

    def status(self) -> dict[str, Any]:
        """What ``tagger status`` shows."""
        return {
            "pid": os.getpid(),
            "state": self.state,
            "started": _iso(self.started),
            "roots": self.roots,
            "database": _safe_url(self.library.db.url),
            "observers": self.observer_modes,
            "missing_roots": {root: _iso(since) for root, since in dict(self.missing_roots).items()},
            "queue": self.queue_length,
            "in_progress": self.in_progress,
            "catch_up_files": self._walk_files if self._walk is not None else None,
            "last_track": self.last_track,
            "errors": self.errors,
            "counts": dict(self.counts),
            "last_reconcile": _iso(self.last_reconcile),
            "policy": self.library.options.policy.value,
            "min_confidence": self.library.options.min_confidence,
            "config_error": self.config_error,
        }

    def _write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_time < STATUS_INTERVAL:
            return
        self._status_time = now
        data = self.status()
        line = self._status_line()
        if line != self._status_text:
            self._status_text = line
            self.notifier.status(line)
        if not force and data == self._status_written:
            return
        self._status_written = data
        try:
            write_json_atomically(self.status_path, {**data, "updated": _iso(time.time())})
        except OSError as error:
            log.warning("cannot write the status file %s: %s", self.status_path, error)
