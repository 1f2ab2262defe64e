"""A regularised, class-balanced linear head over frozen window features, chosen by inner CV.

Standardise, then multinomial logistic regression (L2, ``class_weight="balanced"`` so the 91
classical clips of the GTZAN sample do not drown the 10-clip genres), trained on windows. The
regularisation strength ``C`` and the feature set (embedding alone, or embedding + taggram) are
chosen by an inner cross-validation *over the training clips only*: inner folds are whole clips
(no window of a scored clip is trained on), scored at track level (mean of the windows'
probabilities, as the tagger aggregates) by class-balanced log loss, which is smoother than
macro-F1 on folds holding one or two clips of a genre.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "embedding": ("embedding",),
    "embedding+taggram": ("embedding", "taggram"),
}


@dataclass(frozen=True)
class WindowTable:
    """Training / scoring windows: named feature blocks, genre label, clip index and whether on the tagger's grid."""

    blocks: Mapping[str, np.ndarray]  # "embedding" (n, 200), "taggram" (n, 50)
    labels: np.ndarray  # (n,) genre index
    tracks: np.ndarray  # (n,) clip index
    on_grid: np.ndarray  # (n,) bool: a window the tagger would classify (scored); else an extra training window

    def __len__(self) -> int:
        return len(self.labels)

    def features(self, feature_set: str) -> np.ndarray:
        return np.concatenate([self.blocks[name] for name in FEATURE_SETS[feature_set]], axis=1)

    def subset(self, mask: np.ndarray) -> WindowTable:
        return WindowTable({k: v[mask] for k, v in self.blocks.items()}, self.labels[mask], self.tracks[mask],
                           self.on_grid[mask])  # fmt: skip


@dataclass(frozen=True)
class SoftmaxHead:
    """``softmax(((x - mean) / std) @ coef.T + intercept)`` over the genres in ``classes``."""

    feature_set: str
    c: float
    classes: np.ndarray  # genre indices the head was trained on (all, unless a training part lacks some)
    n_genres: int
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray  # (classes, features), on standardised features
    intercept: np.ndarray  # (classes,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ self.coef.T + self.intercept

    def predict_proba(self, table: WindowTable) -> np.ndarray:
        """``(n, n_genres)`` probabilities; genres the head never saw get 0."""
        z = self.logits(table.features(self.feature_set).astype(np.float64))
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        full = np.zeros((len(p), self.n_genres), dtype=np.float32)
        full[:, self.classes] = p
        return full

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel (features, n_genres), bias (n_genres,))`` acting on raw features: the standardiser folded in.

        ``W' = W / std``, ``b' = b - (mean / std) @ W``: a Dense layer computing the same logits.
        """
        if len(self.classes) != self.n_genres:
            raise ValueError("only a head trained on every genre can be exported")
        kernel = (self.coef / self.std).T
        bias = self.intercept - (self.mean / self.std) @ self.coef.T
        return kernel.astype(np.float32), bias.astype(np.float32)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)


def _logistic(c: float, tol: float, seed: int) -> Any:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000, tol=tol, random_state=seed, warm_start=True)


def _as_head(model: Any, feature_set: str, n_genres: int, mean: np.ndarray, std: np.ndarray) -> SoftmaxHead:
    coef, intercept, classes = model.coef_.copy(), model.intercept_.copy(), model.classes_.copy()
    if len(classes) == 2:  # sklearn stores one row for two classes: make it a two-way softmax
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return SoftmaxHead(feature_set, float(model.C), classes, n_genres, mean, std, coef, intercept)


def fit_head(
    table: WindowTable, feature_set: str, c: float, n_genres: int, seed: int = 0, tol: float = 1e-4
) -> SoftmaxHead:
    """Standardise and fit a balanced multinomial logistic regression on every window of ``table``."""
    x = table.features(feature_set).astype(np.float64)
    mean, std = _standardise(x)
    model = _logistic(c, tol, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter at the weakest regularisation of the grid
        model.fit((x - mean) / std, table.labels)
    return _as_head(model, feature_set, n_genres, mean, std)


def fit_path(
    table: WindowTable, feature_set: str, c_grid: Sequence[float], n_genres: int, seed: int = 0, tol: float = 1e-3
) -> list[SoftmaxHead]:
    """One head per ``C`` (ascending), each fit warm-started from the previous: the inner CV's fast path."""
    x = table.features(feature_set).astype(np.float64)
    mean, std = _standardise(x)
    z = (x - mean) / std
    model = _logistic(min(c_grid), tol, seed)
    heads = []
    for c in sorted(c_grid):
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(z, table.labels)
        heads.append(_as_head(model, feature_set, n_genres, mean, std))
    return heads


def track_probabilities(probabilities: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(track ids, mean window probabilities)``: the tagger's aggregation."""
    ids = np.unique(tracks)
    return ids, np.stack([probabilities[tracks == t].mean(axis=0) for t in ids])


def balanced_log_loss(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Log loss with each genre weighted by the inverse of its track count (every genre counts the same)."""
    p = np.clip(probabilities[np.arange(len(true)), true], 1e-7, 1.0)
    counts = np.bincount(true)
    weights = 1.0 / counts[true]
    return float(-(weights * np.log(p)).sum() / weights.sum())


@dataclass(frozen=True)
class Selection:
    """What the inner CV chose, and the score of every candidate (for the card)."""

    feature_set: str
    c: float
    scores: dict[str, dict[str, float]]  # feature set -> {C: mean inner track log loss}
    inner_folds: int

    def to_dict(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "C": self.c, "inner_folds": self.inner_folds,
                "inner_track_log_loss": self.scores}  # fmt: skip


def inner_folds_for(labels: np.ndarray, wanted: int) -> int:
    """As many inner folds as asked, but no more than the clips of the smallest genre (and at least 2)."""
    counts = np.bincount(labels)
    return max(2, min(wanted, int(counts[counts > 0].min())))


def select(
    table: WindowTable,
    n_genres: int,
    c_grid: Sequence[float],
    feature_sets: Sequence[str],
    inner_folds: int = 5,
    seed: int = 0,
) -> Selection:
    """Choose feature set and ``C`` by stratified inner CV over ``table``'s clips (never a test clip)."""
    ids = np.unique(table.tracks)
    clip_labels = np.array([table.labels[table.tracks == t][0] for t in ids])
    folds = inner_folds_for(clip_labels, inner_folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, dict[str, float]] = {fs: {} for fs in feature_sets}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a genre with fewer clips than folds is expected on this data
        inner = list(splitter.split(np.zeros(len(ids)), clip_labels))
    losses: dict[tuple[str, float], list[float]] = {}
    for train_clips, test_clips in inner:
        train_mask = np.isin(table.tracks, ids[train_clips])
        test_mask = np.isin(table.tracks, ids[test_clips]) & table.on_grid
        train_part, test_part = table.subset(train_mask), table.subset(test_mask)
        _, true_index = np.unique(test_part.tracks, return_index=True)  # sorted, as track_probabilities
        true = test_part.labels[true_index]
        for feature_set in feature_sets:
            for head in fit_path(train_part, feature_set, c_grid, n_genres, seed):
                _, means = track_probabilities(head.predict_proba(test_part), test_part.tracks)
                losses.setdefault((feature_set, head.c), []).append(balanced_log_loss(true, means))
    for (feature_set, c), values in losses.items():
        scores[feature_set][f"{c:g}"] = float(np.mean(values))
    best = min(losses, key=lambda key: (float(np.mean(losses[key])), key[1]))  # ties: stronger regularisation
    return Selection(best[0], best[1], scores, folds)
