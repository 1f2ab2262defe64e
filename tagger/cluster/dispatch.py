"""The recorder side: connect to a cluster and feed it a sliding window of tracks.

A task analyses up to ``TRACKS_PER_TASK`` consecutive tracks (fewer when there are too few to keep every worker
thread busy): each task costs the scan process a few milliseconds of the Dask client's work whatever it holds, and
one scan process is to feed dozens of workers. At most ``WINDOW_PER_THREAD`` tasks per worker thread are submitted
and not yet handed to the recorder, so a million-track scan never builds a million futures, and a recorder that
falls behind stops the dispatch (back-pressure: results are handed over only as the scan asks for them). Results
are handed over in input order, as every :class:`tagger.scan.AnalysisBackend` does.

A task whose worker dies is resubmitted by the scheduler on another worker; once more workers died running it than
the scheduler's ``allowed-failures`` (1 for ``local:N``), the scheduler gives up on it, and its tracks are sent once
more, one per task (the scheduler also blames the tasks beside the culprit), then a track that kills its worker
again is recorded failed. A task that stays on one worker for ``timeout`` is hung: that worker process is ended (a
hung decoder ignores cancellation; its nanny starts another), and its tracks are sent again one per task (a single
track's task is sent on by the scheduler); a track hung alone after that is recorded failed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Future, wait
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from tagger.analysis import DEFAULT_TIMEOUT, Analysed
from tagger.cluster.paths import PathMap
from tagger.cluster.worker import ModelPlugin, analyse_on_worker, end_worker_process
from tagger.errors import ClusterError, FileError, ModelError
from tagger.model import ModelCard
from tagger.pipeline import TrackAnalysis

WINDOW_PER_THREAD = 3  # enough to keep every thread busy while results travel back; bounded memory on both sides
TRACKS_PER_TASK = 4  # the Dask client's cost per track in the scan process: 5.7 ms one per task, 1.7 ms four
CONNECT_TIMEOUT_S = 30
NO_WORKERS_S = 120.0  # a cluster without one worker this long: the scan stops with one line instead of waiting
POLL_S = 5.0  # how often a waiting recorder looks whether the cluster still has workers
# What `local:N` starts with; a remote scheduler is started with the same (README, "Large archives"):
LOCAL_SCHEDULER = {
    # a track is tried on 2 workers at most: a decoder that kills its worker costs 2 processes, not 4
    "distributed.scheduler.allowed-failures": 1,
    # a worker holds only the tracks it is running, so a worker's death blames only those
    "distributed.scheduler.worker-saturation": 1.0,
}
# A LocalCluster closes a worker's nanny for good once its worker has been gone this long (default 15 s); restarting
# a worker (spawn, imports, the model) takes longer on a loaded machine, and each crashing decoder then cost `local:N`
# a worker for good (a test's cluster lost both). Read when a worker is lost, so set for the process, not around
# the cluster's start.
LOCAL_CLUSTER = {"distributed.deploy.lost-worker-timeout": "10 minutes"}


def connect(address: str) -> Client:
    """A client of the scheduler at ``tcp://HOST:PORT`` (or ``tls://``), or of a new ``LocalCluster`` of N worker
    processes for ``local:N``, which the client owns: closing it stops them."""
    if match := re.fullmatch(r"local:(\d+)", address):
        workers = int(match[1])
        if workers < 1:
            raise ClusterError(f"--cluster {address}: expected local:N with N >= 1 worker processes")
        dask.config.set(LOCAL_CLUSTER)
        with dask.config.set(LOCAL_SCHEDULER):
            return Client(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # a worker's errors come back as the tracks' results
            )
    if not re.fullmatch(r"(tcp|tls)://[^/\s]+:\d+", address):
        raise ClusterError(f"--cluster: expected tcp://HOST:PORT (a Dask scheduler) or local:N, got {address!r}")
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"--cluster: no Dask scheduler answers at {address} ({error})") from None


@dataclass
class _Flight:
    """One task submitted: its future, the indices of its tracks, which try this is, where it was last seen running
    and until when."""

    future: Future
    indices: list[int]
    attempt: int
    deadline: float
    worker: str | None = None
    hangs: int = 0  # times its worker process was ended for it


class ClusterBackend:
    """Analyses on the workers of ``client``'s cluster (see the module's docstring); :meth:`close` closes the
    client (and the ``local:N`` cluster it started)."""

    def __init__(
        self,
        client: Client,
        card: ModelCard,
        threads: int = 1,
        path_map: PathMap | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        no_workers_timeout: float = NO_WORKERS_S,
    ) -> None:
        self.client = client
        self.no_workers_timeout = no_workers_timeout
        self._no_workers_since: float | None = None
        self.plugin = ModelPlugin(card, threads)
        self.path_map = path_map or PathMap({})
        self.timeout = timeout
        self._allowed_failures: int | None = None  # None: the plugin is not registered yet

    def close(self) -> None:
        self.client.close()  # the plugin stays registered: the next scan with this model finds it loaded

    def workers(self) -> dict[str, int]:
        """Worker address -> its threads."""
        return dict(self.client.nthreads())

    def analyse(self, paths: list[Path], max_windows: int | None) -> Iterator[Analysed]:
        if not paths:
            return
        self._register()
        threads = max(1, sum(self.workers().values()))
        per_task = max(1, min(TRACKS_PER_TASK, len(paths) // (2 * threads)))  # a few tracks: one each
        window = max(2, WINDOW_PER_THREAD * threads * per_task)  # tracks
        flights: dict[int, _Flight] = {}  # by its first track's index
        done: dict[int, Analysed] = {}
        submitted = handed = 0
        try:
            while handed < len(paths):
                while submitted < len(paths) and submitted - handed < window:
                    indices = list(range(submitted, min(submitted + per_task, len(paths))))
                    flights[submitted] = self._submit(indices, paths, max_windows, attempt=1)
                    submitted = indices[-1] + 1
                if handed in done:
                    yield done.pop(handed)
                    handed += 1
                    continue
                self._collect(flights, done, paths, max_windows)
        finally:  # the scan stopped early (Ctrl-C, an error in the recorder): nothing of it keeps running
            self.client.cancel([flight.future for flight in flights.values()], force=True)

    def _register(self) -> None:
        """Every worker loads the model now (and every worker that joins later), so timeouts time tracks."""
        if self._allowed_failures is not None:
            return
        try:
            self.client.register_plugin(self.plugin)
        except ModelError:
            raise
        except Exception as error:  # raised on a worker, sent back as it was
            reason = f"{type(error).__name__}: {error}"
            raise ModelError(f"the cluster's workers could not load the model: {reason}") from None
        self._allowed_failures = int(self.client.run_on_scheduler(_allowed_failures))

    def _submit(
        self, indices: list[int], paths: list[Path], max_windows: int | None, attempt: int, hangs: int = 0
    ) -> _Flight:
        future = self.client.submit(
            analyse_on_worker,
            [self.path_map.to_worker(paths[index]) for index in indices],
            max_windows,
            self.plugin.name,
            pure=False,  # the same path twice is two analyses (a retry, a file changed between scans)
            retries=0,  # analyse_safely returns every error as a value: a raise is no bad file, do not repeat it
        )
        return _Flight(future, indices, attempt, time.monotonic() + self.timeout, hangs=hangs)

    def _one_each(
        self, flight: _Flight, flights: dict[int, _Flight], paths: list[Path], max_windows: int | None
    ) -> None:
        """The tracks of ``flight`` sent again, a task each (its hangs counted against each): which one of them
        killed or hung the workers shows."""
        for index in flight.indices:
            flights[index] = self._submit([index], paths, max_windows, attempt=2, hangs=flight.hangs)

    def _collect(
        self, flights: dict[int, _Flight], done: dict[int, Analysed], paths: list[Path], max_windows: int | None
    ) -> None:
        """Wait for the first task in flight to finish, or for the first deadline; settle what is due."""
        wait_s = min(POLL_S, max(0.0, min(flight.deadline for flight in flights.values()) - time.monotonic()))
        with suppress(TimeoutError):
            wait([flight.future for flight in flights.values()], timeout=wait_s, return_when="FIRST_COMPLETED")
        if not any(flight.future.done() for flight in flights.values()):
            self._check_workers()
        now = time.monotonic()
        overdue = [first for first, flight in flights.items() if not flight.future.done() and flight.deadline <= now]
        for first in [first for first, flight in flights.items() if flight.future.done()]:
            flight = flights.pop(first)
            results = self._outcome(flight, paths)
            if results is not None:
                done.update(zip(flight.indices, results, strict=True))
            elif len(flight.indices) > 1:
                self._one_each(flight, flights, paths, max_windows)
            else:
                flights[first] = self._submit(flight.indices, paths, max_windows, flight.attempt + 1, flight.hangs)
        if overdue:
            self._overdue(overdue, flights, done, paths, max_windows)

    def _check_workers(self) -> None:
        """A queued track's deadline waits for a worker to take it: with no worker at all for ``no_workers_timeout``
        the scan stops (one line; what was recorded stays, a rescan resumes) rather than wait for ever."""
        if self.client.nthreads():
            self._no_workers_since = None
            return
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since >= self.no_workers_timeout:
            raise ClusterError(
                f"the cluster has had no workers for {self.no_workers_timeout:.0f} s: start workers "
                "(dask worker tcp://SCHEDULER:8786), then scan again; what was recorded is kept"
            )

    def _outcome(self, flight: _Flight, paths: list[Path]) -> list[Analysed] | None:
        """The task's results under the recorder's paths (None: send its tracks once more)."""
        mine = [paths[index] for index in flight.indices]
        try:
            results = flight.future.result()
        except KilledWorker:
            # The scheduler blames every task on a dying worker, a neighbour of the culprit too: sent once more.
            if flight.attempt == 1:
                return None
            deaths = 2 * ((self._allowed_failures or 0) + 1)
            reason = (
                f"gave up: it hung a worker for {self.timeout:.0f} s and others died on it"
                if flight.hangs
                else f"{deaths} worker processes died analysing it (the decoder crashes on this file)"
            )
        except FutureCancelledError:  # the scheduler lost it
            if flight.attempt == 1:
                return None
            reason = "cancelled twice by the cluster"
        except Exception as error:  # raised outside analyse_safely: the task could not run there
            reason = f"worker error {type(error).__name__}: {error}"
        else:
            return [
                replace(result, path=path) if isinstance(result, TrackAnalysis) else type(result)(path, result.reason)
                for path, result in zip(mine, results, strict=True)
            ]
        return [FileError(path, reason) for path in mine]

    def _overdue(
        self,
        overdue: list[int],
        flights: dict[int, _Flight],
        done: dict[int, Analysed],
        paths: list[Path],
        max_windows: int | None,
    ) -> None:
        """A deadline counts from when the task was first seen running on its worker: a task still queued at the
        scheduler, or moved to another worker after a death, gets its full ``timeout`` there."""
        running = {key: worker for worker, keys in self.client.processing().items() for key in keys}
        hung: dict[str, list[int]] = {}
        for first in overdue:
            flight = flights[first]
            worker = running.get(flight.future.key)
            if worker is None or worker != flight.worker:
                flight.worker, flight.deadline = worker, time.monotonic() + self.timeout
                continue
            hung.setdefault(worker, []).append(first)
        if not hung:
            return
        # A hung thread cannot be stopped, only its process: it exits, and its nanny starts a fresh one (not waited
        # for). Killed before anything is cancelled, so the scheduler gives the freed thread no other task to lose
        # meanwhile; the death makes the scheduler send a single track's task on to another worker.
        self.client.run(end_worker_process, workers=list(hung), wait=False)
        for first in (first for firsts in hung.values() for first in firsts):
            flight = flights[first]
            flight.hangs += 1
            flight.worker, flight.deadline = None, time.monotonic() + self.timeout
            alone = len(flight.indices) == 1
            if alone and flight.hangs < 2:
                continue  # the scheduler sends it on to another worker
            self.client.cancel([flight.future], force=True)
            del flights[first]
            if alone:
                done[first] = FileError(paths[first], f"gave up after {self.timeout:.0f} s, twice (decoder hung)")
            else:  # which of them hung shows when each runs alone; one more hang fails it
                self._one_each(flight, flights, paths, max_windows)


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)
