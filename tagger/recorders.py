"""Recording several tracks at a time: the step after the analysis (:meth:`tagger.record.Library.record_job`), run
for up to ``recorders`` tracks at once by threads of the scanning process (:func:`recorded_in_order`), or of each of
its recording processes (:class:`RecordingProcesses`), for the dozens of workers one process cannot record for.

A track's record mostly waits: on the disk (a safe tag write syncs the file and its folder) and on the database's
round trips. Each record holds its own file's lock (:meth:`tagger.store.Database.track_lock`), so records of other
files overlap while two of the same file never do; one thread's Python work runs while others wait. Reports come
back in the order the jobs came, and at most ``2 * recorders`` are pending, so the analyses feeding them (the local
pool, a cluster's workers) are held back by what is recorded, never queued without bound.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, TypeVar, Union

from tagger.lifetime import exit_with_parent_process

if TYPE_CHECKING:
    from tagger.model import ModelCard
    from tagger.record import Library, RecordJob, TagOptions
    from tagger.track import TrackReport

T = TypeVar("T")

MAX_RECORDERS = 16  # the database engine's pool holds two connections per recorder (lock + session), see db.py
START_TIMEOUT_S = 120.0  # for a recording process to import, open the database and say it is ready
STOP_TIMEOUT_S = 300.0  # for one to finish the records it holds when told to stop


def recorded_in_order(jobs: Iterable[Callable[[], T]], recorders: int = 1) -> Iterator[T]:
    """Each job's result, in the jobs' order, with up to ``recorders`` jobs running at a time (1: in this thread).

    A job that raises stops the run: the error comes out here once the jobs already running have finished (a tag
    write is never abandoned half-way), and the jobs not started yet are dropped.
    """
    recorders = max(1, min(recorders, MAX_RECORDERS))
    if recorders == 1:
        for job in jobs:
            yield job()
        return
    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(recorders, thread_name_prefix="tagger-recorder") as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(job))
                while len(pending) >= 2 * recorders or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()  # not started yet; the running ones are waited for by the pool's shutdown


# ---------------------------------------------------------------- recording processes
Answer = Union["TrackReport", Exception]  # what a recording process sends back for a job


@dataclass
class _Child:
    """A recording process, the parent's end of its pipe, and the jobs sent to it and not answered yet."""

    process: BaseProcess
    connection: Connection
    jobs: dict[int, RecordJob] = field(default_factory=dict)
    alone: bool = False  # sent one job at a time: the jobs of a process that died, to tell which one killed it


class RecordingProcesses:
    """``processes`` child processes recording :class:`tagger.record.RecordJob` values, each with its own
    :class:`tagger.record.Library` on ``library``'s database and ``recorders`` threads, all under the per-file locks
    of records in one process; started on the first job, stopped by :meth:`close`.

    A process that dies (killed, out of memory) is what a crash is to a scan: what it left half-done is recovered
    (:meth:`tagger.record.Library.recover`, which waits for the other processes' records in progress), and its jobs
    are sent again one at a time to a new process; a job that kills that one too is recorded failed.
    """

    def __init__(self, library: Library, processes: int, recorders: int = 1) -> None:
        self.library = library  # this process's: it recovers what a dead recording process left
        self.processes = max(1, processes)
        self.recorders = max(1, min(recorders, MAX_RECORDERS))
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Child] = []
        self._retries: deque[tuple[int, RecordJob]] = deque()  # jobs of a process that died, sent again alone

    def close(self) -> None:
        """Each process finishes the records it holds (a tag write is never abandoned), then exits."""
        for child in self._children:
            _send(child, None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self._children:
            while _receive_all(child, {}, timeout=max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    break
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
            child.connection.close()
        self._children = []

    def pids(self) -> set[int]:
        return {child.process.pid for child in self._children if child.process.pid is not None}

    def recorded(self, jobs: Iterable[RecordJob]) -> Iterator[TrackReport]:
        """Each job's report, in the jobs' order. At most ``2 * recorders`` jobs are pending per process, so the
        analyses feeding them are held back by what is recorded. A job that raises stops the run once the records in
        progress have finished; its error comes out here."""
        self._start()
        jobs = iter(jobs)
        answers: dict[int, Answer] = {}
        capacity = 2 * self.recorders
        sent = handed = 0
        exhausted = False
        try:
            while True:
                self._send_retries()
                while not exhausted and sent - handed < capacity * len(self._children):
                    child = min((c for c in self._children if not c.alone), key=lambda c: len(c.jobs), default=None)
                    if child is None or len(child.jobs) >= capacity:
                        break
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    child.jobs[sent] = job
                    _send(child, (sent, job))
                    sent += 1
                while handed in answers:
                    answer = answers.pop(handed)
                    handed += 1
                    if isinstance(answer, Exception):
                        raise answer
                    yield answer
                if exhausted and handed == sent:
                    return
                self._receive(answers)
        finally:  # stopped early (an error, Ctrl-C): the records in progress finish, their answers are not wanted
            while any(child.jobs for child in self._children):
                self._receive({})
            self._retries.clear()

    def _start(self) -> None:
        """Started together, then waited for (each imports and opens the database: a second or two)."""
        spawned = deque(self._spawn() for _ in range(self.processes - len(self._children)))
        try:
            while spawned:
                self._children.append(self._ready(spawned[0]))
                spawned.popleft()
        except BaseException:
            for child in spawned:
                child.process.kill()
            raise

    def _spawn(self, alone: bool = False) -> _Child:
        library = self.library
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_recording_process,
            args=(child_end, library.db.url, library.card, library.options, self.recorders),
            name="tagger-recording",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Child(process, parent_end, alone=alone)

    @staticmethod
    def _ready(child: _Child) -> _Child:
        """``child`` once it has said it is ready; raises why it could not start."""
        ready: object = None
        if child.connection.poll(START_TIMEOUT_S):
            with contextlib.suppress(EOFError):
                ready = child.connection.recv()
        if not isinstance(ready, int):
            child.process.kill()
            child.process.join()
            child.connection.close()
            if isinstance(ready, Exception):
                raise ready  # the database could not be opened there: the same one line as here
            raise RuntimeError(f"a recording process did not start (exit code {child.process.exitcode})")
        return child

    def _send_retries(self) -> None:
        """The jobs of a dead process go one at a time to a process holding no other job."""
        while self._retries:
            child = next((c for c in self._children if c.alone and not c.jobs), None)
            if child is None:
                return
            index, job = self._retries.popleft()
            child.jobs[index] = job
            _send(child, (index, job))
        for child in self._children:  # no job of a dead process left: back to sharing the work
            if not child.jobs:
                child.alone = False

    def _receive(self, answers: dict[int, Answer]) -> None:
        """Wait for answers from any process, or for one to die."""
        by_handle: dict[object, _Child] = {}
        for child in self._children:
            by_handle[child.connection] = by_handle[child.process.sentinel] = child
        for handle in wait(
            [child.connection for child in self._children] + [c.process.sentinel for c in self._children]
        ):
            child = by_handle[handle]
            if child in self._children and not _receive_all(child, answers, timeout=0):
                self._died(child, answers)

    def _died(self, child: _Child, answers: dict[int, Answer]) -> None:
        child.process.join()
        child.connection.close()
        self._children.remove(child)
        code = child.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        # What it left: a pending write finished or undone, a temp copy deleted, before any of its jobs is redone.
        self.library.recover()
        if child.alone:  # it held that one job only: that job killed it, after killing the process before it
            for index, job in child.jobs.items():
                reason = f"a recording process died twice recording it ({how})"
                answers[index] = self.library.record_failure(job.path, job.root, reason, None)
        else:
            self._retries.extend(sorted(child.jobs.items(), key=lambda item: item[0]))
        self._children.append(self._ready(self._spawn(alone=bool(self._retries))))


def _send(child: _Child, message: object) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):  # it died: its sentinel says so
        child.connection.send(message)


def _receive_all(child: _Child, answers: dict[int, Answer], timeout: float) -> bool:
    """Read every answer ``child`` has sent (waiting up to ``timeout`` for the first); False once it is gone."""
    try:
        if not child.connection.poll(timeout):
            return child.process.is_alive()
        while child.connection.poll():
            index, answer = child.connection.recv()
            child.jobs.pop(index, None)
            answers[index] = answer
    except (EOFError, OSError):
        return False
    return True


def _recording_process(connection: Connection, url: str, card: ModelCard, options: TagOptions, recorders: int) -> None:
    """A recording process's life: open the library, then record each job sent, ``recorders`` at a time, until
    told to stop (``None``) or the pipe closes; the records in progress are finished before it exits."""
    from tagger.record import Library
    from tagger.store import Database

    exit_with_parent_process()  # a SIGKILLed scan leaves no recording process behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group; the scan decides how to stop
    try:
        library = Library(Database(url, migrate=False), card, options)
    except Exception as error:
        connection.send(_sendable(error))
        return
    connection.send(os.getpid())
    sending = threading.Lock()

    def answer(index: int, job: RecordJob) -> None:
        try:
            result: Answer = library.record_job(job)
        except Exception as error:
            result = _sendable(error)
        with sending:
            connection.send((index, result))

    with ThreadPoolExecutor(recorders, thread_name_prefix="tagger-recorder") as pool:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            pool.submit(answer, *message)


def _sendable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else one that says the same (a driver's exception may not)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
