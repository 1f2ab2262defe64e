"""The ``moods`` head and its artist-grouped cross-validation, with ``C`` and the abstain cut-off chosen inside
training folds.

Head: a class-balanced multinomial logistic regression (softmax over Q1..Q4) on standardised window
features, the shipped graph's 200-d embedding and 50-tag taggram (the transfer head's fit,
:func:`tagger.train.musicnn.softmax_head.fit_head`), the standardisation folded into raw-feature
weights and bias. Every score here is computed by the runtime's own :class:`tagger.model.Head`
from those folded weights, and a track's scores are the mean of its windows' (as
:func:`tagger.aggregate.aggregate` means them), so the figures are the shipped head's.

Per outer fold, an inner artist-grouped CV on the training clips gives out-of-fold track scores;
``C`` is the grid value with the best inner quadrant macro F1 (ties: the stronger regularisation),
and the abstain cut-off is the lowest top score whose inner precision of the written mood reaches
``target_precision`` (:func:`tagger.train.musicnn.genres.cv.choose_abstain`). The head refit on
the whole training part then scores the held-out clips at that cut-off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.model import Head
from tagger.moods import QUADRANTS, axes
from tagger.train.musicnn.genres.cv import choose_abstain, group_folds
from tagger.train.musicnn.genres.head import track_scores
from tagger.train.musicnn.moods.labels import TAG_NAMES, MoodClip
from tagger.train.musicnn.softmax_head import SoftmaxHead, WindowTable, fit_head, fit_path

INPUTS = ("embedding", "taggram")
FEATURE_SET = "embedding+taggram"  # softmax_head's name for the same two blocks, in the same order
CUTOFFS = np.round(np.arange(0.25, 0.951, 0.01), 2)  # a 4-way softmax's top score is never below 0.25


@dataclass
class MoodData:
    """Every clip's window outputs (rows ``clip`` -> clip index) and quadrant index."""

    clips: list[MoodClip]
    embedding: np.ndarray  # (windows, 200)
    taggram: np.ndarray  # (windows, 50)
    clip: np.ndarray  # (windows,)
    labels: np.ndarray  # (clips,)

    @property
    def groups(self) -> list[str]:
        return [c.clip.group for c in self.clips]

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window rows of ``indices`` and each row's position in ``indices``."""
        position = -np.ones(len(self.clips), np.int64)
        position[indices] = np.arange(len(indices))
        rows = np.flatnonzero(np.isin(self.clip, indices))
        return rows, position[self.clip[rows]]

    def table(self, indices: np.ndarray) -> WindowTable:
        rows, position = self.rows(indices)
        blocks = {"embedding": self.embedding[rows], "taggram": self.taggram[rows]}
        return WindowTable(blocks, self.labels[indices][position], position, np.ones(len(rows), bool))

    def features(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw window features (embedding ++ taggram, the head's ``inputs`` order) and each row's position."""
        rows, position = self.rows(indices)
        return np.concatenate([self.embedding[rows], self.taggram[rows]], axis=1), position


def build_data(clips: Sequence[MoodClip], outputs: Sequence[dict[str, np.ndarray]]) -> MoodData:
    return MoodData(
        clips=list(clips),
        embedding=np.concatenate([o["embedding"] for o in outputs]).astype(np.float64),
        taggram=np.concatenate([o["taggram"] for o in outputs]).astype(np.float64),
        clip=np.concatenate([np.full(len(o["embedding"]), i) for i, o in enumerate(outputs)]),
        labels=np.array([c.quadrant for c in clips]),
    )


def head_dict(fitted: SoftmaxHead, abstain_below: float | None = None) -> dict[str, Any]:
    """The card's ``heads.moods``: the standardisation folded into raw-feature weights and bias."""
    weights, bias = fitted.folded()
    head: dict[str, Any] = {
        "kind": "linear", "task": "multiclass", "role": "mood", "activation": "softmax", "inputs": list(INPUTS),
        "labels": list(QUADRANTS), "tag_names": dict(TAG_NAMES),
        "weights": [_digits(row) for row in weights], "bias": _digits(bias),
    }  # fmt: skip
    if abstain_below is not None:
        head["abstain_below"] = abstain_below
    return head


def _digits(values: np.ndarray) -> list[float]:
    """float32 values as the card stores them: 7 significant digits, which float32 reads back unchanged."""
    return [float(f"{v:.7g}") for v in values.tolist()]


def runtime_head(fitted: SoftmaxHead) -> Head:
    return Head.from_dict("moods", head_dict(fitted))


def clip_scores(head: Head, data: MoodData, indices: np.ndarray) -> np.ndarray:
    """``(len(indices), 4)`` track scores: the runtime head on each window, meaned per clip."""
    x, position = data.features(indices)
    return track_scores(head.linear_probabilities(x).astype(np.float64), position, len(indices))


# ----- scores -----


def quadrant_table(predicted: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """Per-quadrant precision / recall / F1, their macro F1, and accuracy."""
    rows = {}
    for q, name in enumerate(QUADRANTS):
        tp = float(np.sum((predicted == q) & (true == q)))
        written, actual = float(np.sum(predicted == q)), float(np.sum(true == q))
        rows[name] = {
            "precision": tp / written if written else float("nan"),
            "recall": tp / actual if actual else float("nan"),
            "f1": 2 * tp / (written + actual) if written + actual else float("nan"),
        }
    return {
        "per_quadrant": rows,
        "macro_f1": float(np.nanmean([rows[q]["f1"] for q in QUADRANTS])),
        "accuracy": float(np.mean(predicted == true)),
    }


def sign_accuracy(scores: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """How often the sign of each axis (:func:`tagger.moods.axes` of the track scores) matches the quadrant's."""
    truth = [axes({q: float(q == QUADRANTS[t]) for q in QUADRANTS}) for t in true]
    found = [axes(dict(zip(QUADRANTS, row.tolist(), strict=True))) for row in scores]
    result = {}
    for name in ("valence", "arousal"):
        hits = [np.sign(getattr(f, name)) == np.sign(getattr(t, name)) for f, t in zip(found, truth, strict=True)]
        result[name] = float(np.mean(hits))
    return result


def precision_coverage(
    scores: np.ndarray, true: np.ndarray, cutoffs: np.ndarray = CUTOFFS
) -> list[tuple[float, float, float]]:
    """(cut-off, precision of the written mood, coverage) per cut-off: a mood is written when the top score >= it."""
    right = scores.argmax(axis=1) == true
    top = scores.max(axis=1)
    rows = []
    for t in cutoffs:
        written = top >= t
        precision = float(right[written].mean()) if written.any() else float("nan")
        rows.append((float(t), precision, float(written.mean())))
    return rows


# ----- choices made on training folds -----


@dataclass
class Choice:
    c: float
    abstain: float
    inner_macro_f1: float
    inner_by_c: dict[str, float]


def choose_on_training(
    data: MoodData, train: np.ndarray, c_grid: Sequence[float], inner_folds: int, seed: int, target_precision: float
) -> Choice:
    inner = group_folds([data.groups[i] for i in train], inner_folds, seed + 1000)
    oof = {c: np.zeros((len(train), len(QUADRANTS))) for c in c_grid}
    for part in inner:
        rest = np.setdiff1d(np.arange(len(train)), part)
        for fitted in fit_path(data.table(train[rest]), FEATURE_SET, c_grid, len(QUADRANTS), seed):
            oof[fitted.c][part] = clip_scores(runtime_head(fitted), data, train[part])
    true = data.labels[train]
    by_c = {c: quadrant_table(scores.argmax(axis=1), true)["macro_f1"] for c, scores in oof.items()}
    best = max(sorted(c_grid), key=lambda c: by_c[c])  # first of the best: the smallest C among ties
    curve = precision_coverage(oof[best], true)
    return Choice(best, choose_abstain(curve, target_precision), by_c[best], {f"{c:g}": v for c, v in by_c.items()})


def fit_moods(data: MoodData, indices: np.ndarray, c: float, seed: int = 0) -> SoftmaxHead:
    return fit_head(data.table(indices), FEATURE_SET, c, len(QUADRANTS), seed)


# ----- the outer CV -----


@dataclass
class CVResult:
    """Held-out track scores of every repeat (``scores[r]``: clips x 4), each clip's fold's cut-off, the folds."""

    scores: list[np.ndarray] = field(default_factory=list)
    abstain: list[np.ndarray] = field(default_factory=list)
    folds: list[list[np.ndarray]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)


def cross_validate(
    data: MoodData,
    folds: int = 5,
    repeats: int = 3,
    c_grid: Sequence[float] = (0.003, 0.01, 0.03, 0.1),
    inner_folds: int = 3,
    target_precision: float = 0.8,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> CVResult:
    result = CVResult()
    everything = np.arange(len(data.clips))
    for repeat in range(repeats):
        tests = group_folds(data.groups, folds, seed + repeat)
        scores = np.zeros((len(data.clips), len(QUADRANTS)))
        abstain = np.zeros(len(data.clips))
        for number, test in enumerate(tests):
            train = np.setdiff1d(everything, test)
            choice = choose_on_training(data, train, c_grid, inner_folds, seed + repeat, target_precision)
            scores[test] = clip_scores(runtime_head(fit_moods(data, train, choice.c, seed)), data, test)
            abstain[test] = choice.abstain
            result.choices.append(
                {"repeat": repeat, "fold": number, "C": choice.c, "abstain": choice.abstain,
                 "inner_macro_f1": round(choice.inner_macro_f1, 4), "train_clips": len(train),
                 "test_clips": len(test)}
            )  # fmt: skip
            log(f"repeat {repeat} fold {number}: C={choice.c:g} abstain={choice.abstain:.2f}")
        result.scores.append(scores)
        result.abstain.append(abstain)
        result.folds.append(tests)
    return result


def _spread(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    if np.isnan(array).all():  # a quadrant no fold holds (tiny data): no figure, and no numpy warning
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(np.nanmean(array)), "std": float(np.nanstd(array))}


def summarise(data: MoodData, result: CVResult) -> dict[str, Any]:
    """Fold-level figures (mean and std over every fold of every repeat) and the pooled precision/coverage curve."""
    true = data.labels
    fold_tables, signs, operating = [], [], []
    confusion = np.zeros((len(QUADRANTS), len(QUADRANTS)), np.int64)
    for scores, abstain, tests in zip(result.scores, result.abstain, result.folds, strict=True):
        predicted = scores.argmax(axis=1)
        np.add.at(confusion, (true, predicted), 1)
        for test in tests:
            fold_tables.append(quadrant_table(predicted[test], true[test]))
            signs.append(sign_accuracy(scores[test], true[test]))
            written = scores[test].max(axis=1) >= abstain[test]
            right = predicted[test] == true[test]
            operating.append(
                {"precision": float(right[written].mean()) if written.any() else float("nan"),
                 "coverage": float(written.mean()), "cutoff": float(abstain[test][0])}
            )  # fmt: skip
    curves = [precision_coverage(scores, true) for scores in result.scores]
    curve = [
        {"cutoff": float(t), "precision": float(np.nanmean([c[i][1] for c in curves])),
         "coverage": float(np.mean([c[i][2] for c in curves]))}
        for i, t in enumerate(CUTOFFS)
    ]  # fmt: skip
    return {
        "macro_f1": _spread([t["macro_f1"] for t in fold_tables]),
        "accuracy": _spread([t["accuracy"] for t in fold_tables]),
        "per_quadrant": {
            q: {k: _spread([t["per_quadrant"][q][k] for t in fold_tables]) for k in ("precision", "recall", "f1")}
            | {"support": int(np.sum(true == i)), "name": TAG_NAMES[q]}
            for i, q in enumerate(QUADRANTS)
        },
        "confusion": {
            "rows_true_columns_predicted": list(QUADRANTS),
            "counts": confusion.tolist(),
            "note": f"summed over the {len(result.scores)} repeats (each clip counted once per repeat)",
        },
        "sign_accuracy": {k: _spread([s[k] for s in signs]) for k in ("valence", "arousal")},
        "written": {k: _spread([o[k] for o in operating]) for k in ("precision", "coverage", "cutoff")},
        "curve": curve,
        "folds": result.choices,
    }
