"""Window- and track-level scores, per-genre tables in the paper's format, confusion matrices.

A track's genre is the argmax of the mean of its windows' probabilities, as the tagger decides
it. Macro averages are over the genres that occur in the evaluated set's truth or predictions
(as scikit-learn's classification report does): a genre with no test clip has no recall to
average, but predicting it for some clip still costs precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from tagger.train.windows import WindowSet


@dataclass(frozen=True)
class Scores:
    """Scores of one model on one evaluation set."""

    window_accuracy: float
    track_accuracy: float
    per_genre: dict[str, dict[str, float]]  # genre -> precision, recall, f1, support (tracks)
    macro: dict[str, float]  # precision, recall, f1
    confusion: list[list[int]]  # track level; rows true genre, columns predicted
    tracks: int
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def track_votes(probabilities: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(track ids, mean window probabilities per track)``, tracks in order of first appearance."""
    _, first = np.unique(tracks, return_index=True)
    ids = tracks[np.sort(first)]
    means = np.stack([probabilities[tracks == t].mean(axis=0) for t in ids]) if len(ids) else probabilities[:0]
    return ids, means


def track_predictions(probabilities: np.ndarray, data: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """``(true, predicted)`` genre index per track."""
    ids, means = track_votes(probabilities, data.tracks)
    true = np.array([data.labels[data.tracks == t][0] for t in ids], dtype=np.int64)
    return true, means.argmax(axis=1)


def score(probabilities: np.ndarray, data: WindowSet, genres: tuple[str, ...]) -> Scores:
    """Scores of window ``probabilities`` ``(n, genres)`` against ``data``'s labels."""
    labels = list(range(len(genres)))
    true, predicted = track_predictions(probabilities, data)
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, labels=labels, zero_division=0)
    per_genre = _per_genre(genres, precision, recall, f1, support)
    present = (support > 0) | (np.bincount(predicted, minlength=len(genres)) > 0)
    macro = _macro(precision, recall, f1, present)
    return Scores(
        window_accuracy=float((probabilities.argmax(axis=1) == data.labels).mean()),
        track_accuracy=float((true == predicted).mean()),
        per_genre=per_genre,
        macro=macro,
        confusion=confusion_matrix(true, predicted, labels=labels).tolist(),
        tracks=len(true),
        windows=len(data),
    )


def agreement(first: np.ndarray, second: np.ndarray, data: WindowSet) -> float:
    """Share of tracks whose voted genre is the same under two models' window probabilities."""
    _, a = track_predictions(first, data)
    _, b = track_predictions(second, data)
    return float((a == b).mean())


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def _per_genre(
    genres: tuple[str, ...],
    precision: np.ndarray,
    recall: np.ndarray,
    f1: np.ndarray,
    support: np.ndarray,
    keep: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """One row per genre (only where ``keep`` is true, when given)."""
    return {
        g: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i])}
        for i, g in enumerate(genres)
        if keep is None or keep[i]
    }  # fmt: skip


def _macro(precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """Macro averages over the genres present in the truth or the predictions, as scikit-learn does."""
    return {
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }


def from_confusion(
    confusion: np.ndarray, genres: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Per-genre precision / recall / F1 and their macro averages from a confusion matrix (rows true)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    present = (support > 0) | (predicted > 0)
    per_genre = _per_genre(genres, precision, recall, f1, support, keep=present)
    macro = _macro(precision, recall, f1, present)
    return per_genre, macro


def summarise(folds: list[Scores], genres: tuple[str, ...]) -> dict[str, Any]:
    """Mean ± std (sample std over folds) of every score, the confusion matrix summed over folds, and
    ``pooled`` per-genre scores from that sum (steadier than fold means when a fold holds 2 clips of a genre)."""
    confusion = np.sum([f.confusion for f in folds], axis=0).astype(int)
    pooled_per_genre, pooled_macro = from_confusion(confusion, genres)
    return {
        "folds": len(folds),
        "window_accuracy": _spread([f.window_accuracy for f in folds]),
        "track_accuracy": _spread([f.track_accuracy for f in folds]),
        "macro": {k: _spread([f.macro[k] for f in folds]) for k in ("precision", "recall", "f1")},
        "per_genre": {
            g: {
                **{
                    k: _spread([f.per_genre[g][k] for f in folds if f.per_genre[g]["support"]])
                    for k in ("precision", "recall", "f1")
                },
                "support": int(sum(f.per_genre[g]["support"] for f in folds)),
            }
            for g in genres
            if any(f.per_genre[g]["support"] for f in folds)
        },
        "confusion": confusion.tolist(),
        "pooled": {"per_genre": pooled_per_genre, "macro": pooled_macro},
        "tracks": int(sum(f.tracks for f in folds)),
    }


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.2f} ± {value['std']:.2f}"
    return f"{value:.2f}"


def genre_table(per_genre: dict[str, dict[str, Any]], macro: dict[str, Any], support_label: str = "support") -> str:
    """Markdown per-genre precision / recall / F1 table with a macro-average row (the paper's layout)."""
    lines = [f"| genre | precision | recall | f1-score | {support_label} |", "|---|---|---|---|---|"]
    for genre, row in per_genre.items():
        lines.append(
            f"| {genre} | {_cell(row['precision'])} | {_cell(row['recall'])} | {_cell(row['f1'])} | {row['support']} |"
        )
    total = sum(int(row["support"]) for row in per_genre.values())
    lines.append(
        f"| **macro avg** | {_cell(macro['precision'])} | {_cell(macro['recall'])} | {_cell(macro['f1'])} | {total} |"
    )
    return "\n".join(lines)


def plot_confusion(confusion: list[list[int]], genres: tuple[str, ...], path: Path, title: str) -> None:
    """Save a track-level confusion matrix (counts, rows = true genre) as a PNG."""
    import matplotlib  # the [train] extra; its backend must be chosen before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    size = max(4.0, 0.55 * len(genres) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    axes.set_yticks(range(len(genres)), genres)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
