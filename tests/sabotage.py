"""A worker task that crashes or hangs on chosen files, standing in for a decoder bug."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tagger.scan import Analysed, _analyse_in_worker


def sabotaged_analyse(path: Path, max_windows: int | None) -> Analysed:
    if path.name == "crash.wav":
        os._exit(139)  # as a segfault in a C decoder would
    if path.name == "hang.wav":
        time.sleep(3600)
    return _analyse_in_worker(path, max_windows)
