"""Scans of large archives on a Dask ``distributed`` cluster (the ``[cluster]`` extra).

The workers analyse (decode -> features -> model: :func:`tagger.pipeline.analyse_track`), each loading the model
once (:mod:`tagger.cluster.worker`); this process, the recorder, plans the scan, stores every result and writes
every tag under each file's lock (itself, or its recording processes: :mod:`tagger.recorders`), exactly as a local
scan does (:class:`tagger.scan.Scanner`, with the cluster's :class:`~tagger.cluster.dispatch.ClusterBackend` as its
analysis backend). This module and :mod:`.paths` import
without ``distributed`` installed: the checks below run before anything connects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tagger.analysis import DEFAULT_TIMEOUT
from tagger.cluster.paths import PathMap
from tagger.errors import ClusterError
from tagger.store.db import display_name

if TYPE_CHECKING:
    from tagger.cluster.dispatch import ClusterBackend
    from tagger.model import ModelCard

__all__ = ["ClusterError", "PathMap", "open_cluster", "require_server_database"]


def require_server_database(url: str) -> None:
    """A cluster scan records into a database server: the archive's scans run on several machines, and several
    machines cannot share one SQLite file on network storage (its locks do not hold there)."""
    if url.startswith("sqlite"):
        raise ClusterError(
            f"--cluster needs a database server (e.g. --db postgresql+psycopg://USER@HOST/DB), not the SQLite "
            f"file {display_name(url)}: several machines cannot share one SQLite file on network storage"
        )


def open_cluster(
    address: str,
    card: ModelCard,
    db_url: str,
    threads: int = 1,
    path_map: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ClusterBackend:
    """The analysis backend on the cluster at ``address`` (``tcp://HOST:8786``, or ``local:N`` for a
    ``LocalCluster`` of N worker processes started here, stopped when the backend closes); raises
    :class:`ClusterError`."""
    require_server_database(db_url)
    try:
        from tagger.cluster.dispatch import ClusterBackend, connect
    except ImportError as error:
        raise ClusterError(f"--cluster needs Dask distributed: pip install 'genre-tagger[cluster]' ({error})") from None
    return ClusterBackend(connect(address), card, threads, PathMap(path_map or {}), timeout)
