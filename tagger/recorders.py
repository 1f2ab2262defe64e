"""Recording several tracks at a time: the step after the analysis (:meth:`tagger.record.Library.record`), run for
up to ``recorders`` tracks at once by threads of the scanning process.

A track's record mostly waits: on the disk (a safe tag write syncs the file and its folder) and on the database's
round trips. Each record holds its own file's lock (:meth:`tagger.store.Database.track_lock`), so records of other
files overlap while two of the same file never do; one thread's Python work runs while others wait. Reports come
back in the order the jobs came, and at most ``2 * recorders`` are pending, so the analyses feeding them (the local
pool, a cluster's workers) are held back by what is recorded, never queued without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

MAX_RECORDERS = 16  # the database engine's pool holds two connections per recorder (lock + session), see db.py


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
