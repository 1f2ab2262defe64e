"""Finding the audio files under the library roots."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tagger.audio import is_audio_path
from tagger.tags import TEMP_MARKER

PARTIAL_SUFFIXES = (".part", ".crdownload", ".partial", ".tmp", ".download", ".!qb")


def is_candidate(path: str | Path) -> bool:
    """An audio file name that is not a download in progress or a hidden temp file (ours included)."""
    name = Path(path).name
    return not name.startswith(".") and not name.lower().endswith(PARTIAL_SUFFIXES) and is_audio_path(name)


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def iter_audio_files(
    roots: Iterable[str | Path], follow_symlinks: bool = False, leftovers: list[Path] | None = None
) -> Iterator[tuple[Path, Path]]:
    """Yield ``(root, path)`` for every candidate audio file, sorted per folder.

    Symlinks (files or folders) pointing outside the roots are skipped unless ``follow_symlinks``;
    a folder reached twice (a symlink loop) is walked once. Temp files of a tag write that a
    crash left behind are appended to ``leftovers`` (the scanner deletes them under the writer lock).
    """
    root_paths = [Path(r).expanduser().absolute() for r in roots]
    real_roots = [os.path.realpath(r) for r in root_paths]
    seen_dirs: set[tuple[int, int]] = set()
    for root in root_paths:
        if root.is_file():
            if is_candidate(root):
                yield root.parent, root
            continue
        for folder, dirs, files in os.walk(root, followlinks=True, onerror=lambda _error: None):
            try:
                stat = os.stat(folder)
            except OSError:
                dirs[:] = []
                continue
            key = (stat.st_dev, stat.st_ino)
            if key in seen_dirs:
                dirs[:] = []
                continue
            seen_dirs.add(key)
            if not follow_symlinks:
                dirs[:] = [
                    d
                    for d in dirs
                    if not os.path.islink(os.path.join(folder, d))
                    or _inside(os.path.realpath(os.path.join(folder, d)), real_roots)
                ]
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if leftovers is not None and TEMP_MARKER in name:
                    leftovers.append(Path(path))
                if not is_candidate(name):
                    continue
                if os.path.islink(path) and not follow_symlinks and not _inside(os.path.realpath(path), real_roots):
                    continue
                yield root, Path(path)
