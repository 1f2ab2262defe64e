"""Find labelled clips on disk: one folder per genre, any decodable audio format.

GTZAN's layout (``<genre>/<genre>.NNNNN.<ext>``) is one case of this; a clip's *key* is
``<genre>/<file stem>`` (``blues/blues.00042``), which is what split lists name, so the
same list works whatever format the audio was converted to.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tagger.audio import is_audio_path


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: Path
    genre: str
    key: str  # "<genre>/<stem>": the name split lists use
    size: int  # bytes, part of the data fingerprint


@dataclass(frozen=True)
class Dataset:
    """Clips in a stable order (by key) and the label vocabulary (the head's label order)."""

    root: Path
    clips: tuple[Clip, ...]
    genres: tuple[str, ...]

    def labels(self) -> list[int]:
        index = {g: i for i, g in enumerate(self.genres)}
        return [index[c.genre] for c in self.clips]

    def counts(self) -> dict[str, int]:
        counted = Counter(c.genre for c in self.clips)
        return {g: counted[g] for g in self.genres}

    def fingerprint(self) -> str:
        """sha256 of the sorted ``key<TAB>relative path<TAB>size`` lines: which data a model saw."""
        digest = hashlib.sha256()
        for clip in self.clips:
            relative = clip.path.relative_to(self.root).as_posix()
            digest.update(f"{clip.key}\t{relative}\t{clip.size}\n".encode())
        return "sha256:" + digest.hexdigest()


def scan(root: str | Path, genres: list[str] | None = None) -> Dataset:
    """Every audio file under ``root/<genre>/`` (recursively), labelled by its top-level folder.

    ``genres`` fixes the label order (and ignores other folders); by default every folder
    that holds audio, sorted. Hidden files and folders are skipped. Two files with the same
    key (e.g. ``x.wav`` and ``x.flac``) keep the first by name, so a clip is never counted twice.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if genres is not None:
        missing = [g for g in genres if not (root / g).is_dir()]
        if missing:
            raise FileNotFoundError(f"no folder for genres {missing} under {root}")
        folders = [root / g for g in genres]
    clips: dict[str, Clip] = {}
    found: list[str] = []
    for folder in folders:
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and is_audio_path(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            continue
        found.append(folder.name)
        for path in files:
            key = f"{folder.name}/{path.stem}"
            clips.setdefault(key, Clip(path, folder.name, key, path.stat().st_size))
    if not clips:
        raise FileNotFoundError(f"no audio files in genre folders under {root}")
    vocabulary = tuple(genres) if genres is not None else tuple(found)
    return Dataset(root, tuple(sorted(clips.values(), key=lambda c: c.key)), vocabulary)
