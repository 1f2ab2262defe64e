"""Finding the audio files under the library roots, and the one spelling of a path the database uses."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tagger.files import is_audio_name, os_reason

PARTIAL_SUFFIXES = (".part", ".crdownload", ".partial", ".tmp", ".download", ".!qb")

WalkError = Callable[[Path, str], None]
"""Told about each folder a walk could not enter and why ("permission denied", "path too long")."""


def canonical_path(path: str | Path) -> Path:
    """The path as the database stores it: absolute, ``~`` expanded, every folder symlink resolved.

    A folder is resolved entirely (``realpath``); a file keeps its own last component, so a
    symlinked file is recorded under its link's name while the folders leading to it are resolved.
    ``lib``, ``./lib``, ``../x/lib`` and a symlink to ``lib`` therefore all give one spelling, and a
    walk of that root yields ``canonical root + relative path`` for every file under it.
    """
    absolute = Path(path).expanduser().absolute()
    if absolute.name in ("", ".", "..") or os.path.isdir(absolute):
        return Path(os.path.realpath(absolute))
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def is_under(path: str | Path, roots: Iterable[str | Path]) -> bool:
    """``path`` is one of ``roots`` or inside one (compared as spelled: pass canonical paths)."""
    text = os.fspath(path)
    return any(text == os.fspath(root) or text.startswith(os.fspath(root).rstrip(os.sep) + os.sep) for root in roots)


def is_candidate(path: str | Path) -> bool:
    """An audio file name that is not a download in progress or a hidden temp file (ours included).

    Audio in a format whose tags are not written (``.wv``, ``.mka``, ...) is a candidate too, so
    that scan and watch report it as unsupported instead of passing over it without a word.
    """
    name = Path(path).name
    return not name.startswith(".") and not name.lower().endswith(PARTIAL_SUFFIXES) and is_audio_name(name)


def iter_audio_files(
    roots: Iterable[str | Path], follow_symlinks: bool = False, on_error: WalkError | None = None
) -> Iterator[tuple[Path, Path]]:
    """Yield ``(root, path)`` for every candidate audio file, sorted per folder, in canonical spelling.

    A root that is not a folder is yielded as it is. Only names are judged here: a FIFO or device
    named like audio is yielded too, for the scanner to report (it never opens one). Symlinks
    (files or folders) pointing outside the roots are skipped unless ``follow_symlinks``; a folder
    reached twice (a symlink loop) is walked once.
    A folder that cannot be listed is told to ``on_error`` and the walk goes on.
    """
    root_paths = [canonical_path(r) for r in roots]
    real_roots = [os.path.realpath(r) for r in root_paths]
    seen_dirs: set[tuple[int, int]] = set()
    seen_linked: set[tuple[int, int]] = set()  # files with several hard links: scanned under their first name

    def failed(error: OSError) -> None:
        if on_error is not None:
            on_error(Path(error.filename), f"cannot read folder: {os_reason(error)}")

    for root in root_paths:
        if not os.path.lexists(root):
            if on_error is not None:  # told once, not recorded: a missing root is no track
                on_error(root, "no such file or folder")
            continue
        if not os.path.isdir(root):
            yield root.parent, root  # named by the user: whatever it is, the scan says what became of it
            continue
        for folder, dirs, files in os.walk(root, followlinks=True, onerror=failed):
            try:
                stat = os.stat(folder)
            except OSError as error:
                error.filename = error.filename or folder
                failed(error)
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
                    or is_under(os.path.realpath(os.path.join(folder, d)), real_roots)
                ]
            dirs.sort()
            for name in sorted(files):
                if not is_candidate(name):
                    continue
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    inside = is_under(os.path.realpath(path), real_roots)
                    # A link to a file inside the roots: that file is scanned under its own name, once;
                    # tagging it twice would record our own genre as the owner's under the second name.
                    if inside or not follow_symlinks:
                        continue
                elif _another_name_of_a_walked_file(path, seen_linked):
                    continue  # as for a link: one file, one track, or our genre is read as the owner's
                yield root, Path(path)


def _another_name_of_a_walked_file(path: str, seen: set[tuple[int, int]]) -> bool:
    """True for the second and later names of a hard-linked file in one walk (remembered in ``seen``)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False  # the scan says what became of it
    if st.st_nlink < 2:
        return False
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return True
    seen.add(key)
    return False
