"""Where the workers see the library: ``path_map = { "/srv/music" = "/mnt/music" }`` (recorder -> workers)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath


class PathMap:
    """Recorder paths to worker paths, by folder prefix (the longest that matches; whole path components only,
    so ``/srv/music`` does not map ``/srv/musical``). A path under no prefix is the same on the workers."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        pairs = [(PurePosixPath(source), PurePosixPath(target)) for source, target in mapping.items()]
        self._pairs = sorted(pairs, key=lambda pair: len(pair[0].parts), reverse=True)

    def to_worker(self, path: str | Path) -> str:
        recorder = PurePosixPath(path)
        for source, target in self._pairs:
            if recorder.is_relative_to(source):
                return str(target / recorder.relative_to(source))
        return str(recorder)

    def __bool__(self) -> bool:
        return bool(self._pairs)
