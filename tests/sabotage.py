"""A worker task that crashes or hangs on chosen files, standing in for a decoder bug."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tagger.analysis import Analysed, _analyse_in_worker
from tagger.audio import AudioInfo, read_segments


def sabotaged_analyse(path: Path, max_windows: int | None) -> Analysed:
    if path.name == "crash.wav":
        os._exit(139)  # as a segfault in a C decoder would
    if path.name == "hang.wav":
        time.sleep(3600)
    if path.name == "ffmpeg-hang.wav":  # a decoder subprocess stuck for good: ffmpeg opening a FIFO nobody writes
        fifo = path.with_name("stuck.fifo")
        next(read_segments(fifo, 8000, [0], 8000, AudioInfo(fifo, 0.0, 8000, 1, "ffmpeg")))
    return _analyse_in_worker(path, max_windows)


def sabotaged_cluster_analyse(paths: list[str], max_windows: int | None, plugin: str) -> list[Analysed]:
    """The same, as the cluster's task (``tagger.cluster.worker.analyse_on_worker``), on a Dask worker."""
    from tagger.cluster.worker import analyse_on_worker

    names = [Path(path).name for path in paths]
    if "crash.wav" in names:
        os._exit(139)
    if "hang.wav" in names:
        time.sleep(3600)
    time.sleep(sum(1.0 for name in names if name.startswith("slow")))  # long tracks: a worker is killed in one
    return analyse_on_worker(paths, max_windows, plugin)
