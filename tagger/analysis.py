"""Where tracks are analysed (decode -> features -> model, :func:`tagger.pipeline.analyse_track`) for a scan:
the backends the :class:`tagger.scan.Scanner` takes, all with one interface (:class:`AnalysisBackend`). Here, in
this process and in a local pool of worker processes; :mod:`tagger.cluster`, on a Dask cluster."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Protocol

from tagger.errors import FileError, ModelError
from tagger.lifetime import die_with_parent_thread, exit_with_parent_process
from tagger.model import Classifier, ModelCard
from tagger.pipeline import TrackAnalysis, analyse_track

Analysed = TrackAnalysis | FileError
DEFAULT_TIMEOUT = 300.0  # seconds per track before a worker is presumed hung


# ---------------------------------------------------------------- worker side
_worker_classifier: Classifier | None = None
_worker_load_error: ModelError | None = None
_workers_loaded: Barrier | None = None
_LOAD_TIMEOUT = 300.0  # seconds for every worker to import and load the model


def _init_worker(card: ModelCard, threads: int, loaded: Barrier, parent_pid: int, from_main_thread: bool) -> None:
    global _worker_classifier, _worker_load_error, _workers_loaded
    # A SIGKILLed parent must not leave a worker behind. The kernel's death signal follows the thread
    # that spawned us, so it is armed only when that is the main thread (the daemon spawns from its
    # processor thread); the watcher thread covers every case, the signal also a worker stuck in C code.
    exit_with_parent_process()
    if from_main_thread:
        die_with_parent_thread(parent_pid)
    # Ctrl-C reaches the whole process group; the parent decides how to stop, the workers just get killed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not os.environ.get("TAGGER_DEBUG"):
        # Decoders (libmpg123, ffmpeg) complain on stderr about recoverable glitches; problems come
        # back as values naming the file, so the workers' stderr would only scribble over the progress bar.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    _workers_loaded = loaded
    try:
        _worker_classifier = Classifier(card, threads=threads)
    except ModelError as error:  # told to the parent by _ready(): an initializer that raises only breaks the pool
        _worker_load_error = error


def analyse_safely(path: Path, classifier: Classifier, max_windows: int | None) -> Analysed:
    """Never raises for a bad file: the error comes back as a value naming the file and reason."""
    try:
        return analyse_track(path, classifier, max_windows)
    except FileError as error:
        return error
    except MemoryError:
        return FileError(path, "out of memory while decoding")
    except Exception as error:  # a decoder bug must not stop a scan of 100k files
        return FileError(path, f"unexpected {type(error).__name__}: {error}")


def _ready() -> ModelError | None:
    """Blocks until every worker has loaded its model: while one waits here it takes no other task,
    so ``workers`` of these calls finishing means each worker ran one. Returns why the load failed."""
    assert _workers_loaded is not None
    _workers_loaded.wait(_LOAD_TIMEOUT)
    return _worker_load_error


def _analyse_in_worker(path: Path, max_windows: int | None) -> Analysed:
    assert _worker_classifier is not None
    return analyse_safely(path, _worker_classifier, max_windows)


# ---------------------------------------------------------------- backends
class AnalysisBackend(Protocol):
    """Where tracks are analysed: ``analyse`` yields one result per path, in input order, never raising for a bad
    file (a :class:`FileError` naming it comes back instead); what it holds (workers, models) lasts until ``close``."""

    def analyse(self, paths: list[Path], max_windows: int | None) -> Iterator[Analysed]: ...

    def close(self) -> None: ...


class InProcess:
    """In this process, the model loaded on the first track (tests, and ``isolate=False``)."""

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        self.card, self.threads = card, threads
        self._classifier: Classifier | None = None

    def analyse(self, paths: list[Path], max_windows: int | None) -> Iterator[Analysed]:
        if not paths:
            return  # nothing to classify: no model is loaded
        if self._classifier is None:
            self._classifier = Classifier(self.card, threads=self.threads)
        for path in paths:
            yield analyse_safely(path, self._classifier, max_windows)

    def close(self) -> None:
        self._classifier = None


class ProcessPool:
    """Local worker processes (spawned on the first track, one model each), so a crashing or hanging decoder costs
    one track: a worker that dies or passes ``timeout`` is killed and the pool restarted."""

    def __init__(self, card: ModelCard, workers: int = 1, threads: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.card, self.workers, self.threads, self.timeout = card, max(1, workers), threads, timeout
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def analyse(self, paths: list[Path], max_windows: int | None) -> Iterator[Analysed]:
        """Results in input order; a few tracks in flight per worker at most (bounded memory)."""
        pending: dict[int, Future[Analysed]] = {}
        next_submit = 0
        for index in range(len(paths)):
            while next_submit < len(paths) and len(pending) < self.workers * 2:
                pending[next_submit] = self._submit(paths[next_submit], max_windows)
                next_submit += 1
            try:
                yield pending.pop(index).result(timeout=self.timeout)
            except TimeoutError:
                self._restart_pool()
                yield FileError(paths[index], f"gave up after {self.timeout:.0f} s (decoder hung)")
                pending = {i: self._submit(paths[i], max_windows) for i in pending}
            except BrokenProcessPool:
                # Some track in flight killed its worker; retry this one alone to tell whether it is the one.
                self._restart_pool()
                yield self._retry_alone(paths[index], max_windows)
                pending = {i: self._submit(paths[i], max_windows) for i in pending}

    def _retry_alone(self, path: Path, max_windows: int | None) -> Analysed:
        try:
            return self._submit(path, max_windows).result(timeout=self.timeout)
        except (BrokenProcessPool, TimeoutError):
            self._restart_pool()
            return FileError(path, "the decoder crashed on this file (worker process died)")

    def _submit(self, path: Path, max_windows: int | None) -> Future[Analysed]:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(
                    self.card,
                    self.threads,
                    context.Barrier(self.workers),
                    os.getpid(),
                    # Python 3.11 spawns the workers in submit(), so in this thread: the _ready() submits below.
                    threading.current_thread() is threading.main_thread(),
                ),
            )
            # Wait for every worker to load the model, so per-track timeouts time tracks, not start-up
            # (and no worker idles through the first tracks while another is still importing).
            for ready in [self._pool.submit(_ready) for _ in range(self.workers)]:
                if (error := ready.result()) is not None:
                    self.close()
                    raise error
        return self._pool.submit(_analyse_in_worker, path, max_windows)

    def worker_pids(self) -> set[int]:
        """The running workers' process ids (none before the first track): a restart changes them."""
        return {process.pid for process in self._processes() if process.pid is not None}

    def _processes(self) -> list[multiprocessing.process.BaseProcess]:
        # ProcessPoolExecutor keeps no public list of its processes; ``_processes`` is pid -> Process.
        return list((getattr(self._pool, "_processes", None) or {}).values())

    def _restart_pool(self) -> None:
        """Kill the workers (a hung decoder ignores polite shutdown); the next submit starts fresh ones."""
        if self._pool is None:
            return
        for process in self._processes():
            process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
