"""Train / validation / test splits of a :class:`~tagger.train.datasets.Dataset`, as clip indices.

Three protocols: ``random`` (stratified 80/20 as in the paper), ``fault-filtered``
(Kereliuk, Sturm & Larsen 2015: artist-disjoint lists shipped in ``tagger/train/splits/``), and
repeated stratified k-fold for datasets too small for one hold-out split. Validation (early
stopping) is always carved from the training part, so nothing is selected on a test set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import RepeatedStratifiedKFold

from tagger.train.datasets import Dataset

LISTS_DIR = Path(__file__).parent / "splits"
ValidFrom = Literal["lists", "train"]


@dataclass(frozen=True)
class Split:
    """Indices into ``Dataset.clips``; ``valid`` may be empty (train for a fixed number of epochs)."""

    protocol: str
    train: tuple[int, ...]
    valid: tuple[int, ...]
    test: tuple[int, ...]
    fold: int | None = None  # CV: fold number within its repeat
    repeat: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self, dataset: Dataset) -> dict[str, Any]:
        """Counts per part and genre, for the card and the report."""

        def per_genre(indices: Sequence[int]) -> dict[str, int]:
            return {g: sum(1 for i in indices if dataset.clips[i].genre == g) for g in dataset.genres}

        return {
            "protocol": self.protocol,
            "counts": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "per_genre": {"train": per_genre(self.train), "valid": per_genre(self.valid), "test": per_genre(self.test)},
            **self.info,
        }


def stratified_take(
    indices: Sequence[int], labels: Sequence[int], fraction: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (rest, taken) with ``fraction`` of each class taken.

    Per class ``round(fraction * n)`` clips, at least one when the class has two or more
    (so every genre is represented on both sides when it can be), never all of them.
    """
    by_class: dict[int, list[int]] = {}
    for i in indices:
        by_class.setdefault(labels[i], []).append(i)
    rest: list[int] = []
    taken: list[int] = []
    for label in sorted(by_class):
        members = list(by_class[label])
        rng.shuffle(members)
        n = len(members)
        count = min(n - 1, max(1, round(fraction * n))) if n >= 2 and fraction > 0 else 0
        taken.extend(members[:count])
        rest.extend(members[count:])
    return sorted(rest), sorted(taken)


def random_split(dataset: Dataset, test_fraction: float = 0.2, valid_fraction: float = 0.1, seed: int = 0) -> Split:
    """Stratified hold-out: ``test_fraction`` per genre for test, then ``valid_fraction`` of the rest."""
    rng = np.random.default_rng(seed)
    labels = dataset.labels()
    train_valid, test = stratified_take(range(len(labels)), labels, test_fraction, rng)
    train, valid = stratified_take(train_valid, labels, valid_fraction, rng)
    info = {"test_fraction": test_fraction, "valid_fraction": valid_fraction, "seed": seed}
    return Split("random", tuple(train), tuple(valid), tuple(test), info=info)


def read_list(path: Path) -> list[str]:
    """Clip keys (``genre/genre.NNNNN``) of one split list; blank lines and ``#`` comments ignored."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def fault_filtered(
    dataset: Dataset,
    lists_dir: Path = LISTS_DIR,
    valid_from: ValidFrom = "lists",
    valid_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """The fault-filtered split restricted to the clips present; the others are counted as missing.

    ``valid_from="lists"`` uses the published validation list for early stopping (full GTZAN);
    ``"train"`` merges train+valid and carves a stratified validation set from them, for partial
    copies where some genres appear only in the validation list. Clips in the data but in no list
    are excluded (the split's point) and counted too.
    """
    by_key = {clip.key: i for i, clip in enumerate(dataset.clips)}
    parts: dict[str, list[int]] = {}
    missing: dict[str, int] = {}
    listed: set[str] = set()
    for part in ("train", "valid", "test"):
        keys = read_list(lists_dir / f"fault_filtered_{part}.txt")
        listed.update(keys)
        parts[part] = sorted(by_key[k] for k in keys if k in by_key)
        missing[part] = sum(1 for k in keys if k not in by_key)
    excluded = sorted(k for k in by_key if k not in listed)
    train, valid = parts["train"], parts["valid"]
    if valid_from == "train":
        labels = dataset.labels()
        train, valid = stratified_take(sorted(train + valid), labels, valid_fraction, np.random.default_rng(seed))
    info: dict[str, Any] = {
        "valid_from": valid_from,
        "listed": {p: len(read_list(lists_dir / f"fault_filtered_{p}.txt")) for p in parts},
        "present": {p: len(v) for p, v in parts.items()},
        "missing": missing,
        "excluded_unlisted": len(excluded),
    }
    if valid_from == "train":
        info["valid_fraction"] = valid_fraction
    return Split("fault-filtered", tuple(train), tuple(valid), tuple(parts["test"]), info=info)


def repeated_kfold(
    dataset: Dataset, folds: int = 5, repeats: int = 3, valid_fraction: float = 0.15, seed: int = 0
) -> Iterator[Split]:
    """Repeated stratified k-fold: every clip is tested once per repeat; validation carved from each train part."""
    labels = dataset.labels()
    counts = np.bincount(labels, minlength=len(dataset.genres))
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise ValueError(f"{folds}-fold CV needs at least {folds} clips per genre; the smallest genre has {smallest}")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    rng = np.random.default_rng(seed)
    info = {"folds": folds, "repeats": repeats, "valid_fraction": valid_fraction, "seed": seed}
    for n, (train_valid, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        train, valid = stratified_take(train_valid.tolist(), labels, valid_fraction, rng)
        yield Split(
            "cv",
            tuple(train),
            tuple(valid),
            tuple(sorted(test.tolist())),
            fold=n % folds,
            repeat=n // folds,
            info=info,
        )
