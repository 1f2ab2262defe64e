"""One head per fold: window tables from the cached backbone outputs, fit and score, int8 parity of a fold.

Each fold selects and fits a :class:`~tagger.train.musicnn.softmax_head.SoftmaxHead` on its training clips
only, scores it at track level as the tagger does, and (for the parity folds) converts its backbone + head
the way the shipped file is converted and runs the held-out clips through :class:`tagger.model.Classifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger.model import Classifier, ModelCard
from tagger.train.card import write_card
from tagger.train.datasets import Dataset
from tagger.train.evaluate import Scores, agreement, score
from tagger.train.musicnn.backbone import OFFSET_FRAMES, frame_windows
from tagger.train.musicnn.config import Prepared, TransferConfig
from tagger.train.musicnn.export import build_export_model, convert_shipped, heads_for_card
from tagger.train.musicnn.layouts import fast_layout
from tagger.train.musicnn.port import MUSICNN_FEATURES, load_pretrained
from tagger.train.musicnn.softmax_head import Selection, SoftmaxHead, WindowTable, fit_head, select
from tagger.train.splits import read_list
from tagger.train.windows import WindowSet


def window_table(prepared: Prepared, indices: Sequence[int], training: bool, offset: bool = True) -> WindowTable:
    """Grid windows of ``indices`` (plus, for training, the offset windows) as a table."""
    labels = prepared.labels
    blocks: dict[str, list[np.ndarray]] = {"embedding": [], "taggram": []}
    window_labels: list[int] = []
    tracks: list[int] = []
    on_grid: list[bool] = []
    for index in indices:
        if index not in prepared.outputs:
            continue
        clip = prepared.outputs[index]
        parts = [(clip.grid, True)] + ([(clip.offset, False)] if training and offset else [])
        for part, grid in parts:
            blocks["embedding"].append(part.embedding)
            blocks["taggram"].append(part.taggram)
            window_labels += [int(labels[index])] * len(part)
            tracks += [index] * len(part)
            on_grid += [grid] * len(part)
    return WindowTable(
        {k: np.concatenate(v) for k, v in blocks.items()},
        np.asarray(window_labels, dtype=np.int64),
        np.asarray(tracks, dtype=np.int64),
        np.asarray(on_grid, dtype=bool),
    )


def budget_table(prepared: Prepared, indices: Sequence[int], budget: int) -> WindowTable:
    """The windows the tagger classifies in each clip under ``max_windows=budget``."""
    labels = prepared.labels
    embeddings, taggrams, window_labels, tracks = [], [], [], []
    for index in indices:
        clip = prepared.outputs[index]
        part = clip.spread.get(budget, clip.grid)
        embeddings.append(part.embedding)
        taggrams.append(part.taggram)
        window_labels += [int(labels[index])] * len(part)
        tracks += [index] * len(part)
    return WindowTable(
        {"embedding": np.concatenate(embeddings), "taggram": np.concatenate(taggrams)},
        np.asarray(window_labels), np.asarray(tracks), np.ones(len(window_labels), dtype=bool),
    )  # fmt: skip


def as_window_set(table: WindowTable) -> WindowSet:
    """The evaluation module's view of a table (labels and clips per window; the windows themselves unused)."""
    return WindowSet(np.zeros((len(table), 0), np.float32), table.labels, table.tracks)


@dataclass
class FoldResult:
    """One head trained on ``train`` and scored on ``test`` (float, and int8 when converted)."""

    protocol: str
    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    selection: Selection
    head: SoftmaxHead
    probabilities: np.ndarray  # float window probabilities of the test grid windows
    test_table: WindowTable
    scores: Scores
    budgets: dict[str, Scores] = field(default_factory=dict)
    int8_scores: Scores | None = None
    int8_agreement: float | None = None
    int8_bytes: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)  # test genre -> clips left out (not trainable)
    repeat: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repeat": self.repeat,
            "train_clips": len(self.train),
            "test_clips": len(self.test),
            "feature_set": self.selection.feature_set,
            "C": self.selection.c,
            "float_track_accuracy": self.scores.track_accuracy,
            "float_macro_f1": self.scores.macro["f1"],
            **({"int8_macro_f1": self.int8_scores.macro["f1"], "int8_track_accuracy": self.int8_scores.track_accuracy,
                "track_agreement": self.int8_agreement} if self.int8_scores is not None else {}),
            **({"excluded_untrainable": self.excluded} if self.excluded else {}),
        }  # fmt: skip


def fit_fold(
    prepared: Prepared,
    config: TransferConfig,
    protocol: str,
    name: str,
    train: Sequence[int],
    test: Sequence[int],
    budgets: bool = False,
) -> FoldResult:
    """Select and fit the head on ``train`` (inner CV on those clips only), score it on ``test``."""
    labels = prepared.labels
    train = tuple(i for i in train if i in prepared.outputs)
    trainable = set(labels[list(train)].tolist())
    kept = tuple(i for i in test if i in prepared.outputs and labels[i] in trainable)
    excluded: dict[str, int] = {}
    for i in test:
        if i in prepared.outputs and labels[i] not in trainable:
            genre = prepared.dataset.genres[labels[i]]
            excluded[genre] = excluded.get(genre, 0) + 1
    n_genres = len(prepared.dataset.genres)
    train_table = window_table(prepared, train, training=True, offset=config.offset_windows)
    selection = select(train_table, n_genres, config.c_grid, config.feature_sets, config.inner_folds, config.seed)
    head = fit_head(train_table, selection.feature_set, selection.c, n_genres, config.seed)
    test_table = window_table(prepared, kept, training=False)
    probabilities = head.predict_proba(test_table)
    result = FoldResult(
        protocol, name, train, kept, selection, head, probabilities, test_table,
        score(probabilities, as_window_set(test_table), prepared.dataset.genres), excluded=excluded,
    )  # fmt: skip
    if budgets:
        for budget in config.budgets:
            table = budget_table(prepared, kept, budget)
            probabilities = head.predict_proba(table)
            result.budgets[str(budget)] = score(probabilities, as_window_set(table), prepared.dataset.genres)
        result.budgets["all"] = result.scores
    return result


def clip_windows(prepared: Prepared, indices: Sequence[int], training: bool, offset: bool = True) -> np.ndarray:
    """Log-mel windows (the backbone's input) in the same order as :func:`window_table`'s rows."""
    params = MUSICNN_FEATURES
    chunks = []
    for index in indices:
        if index not in prepared.outputs:
            continue
        logmel = prepared.features.log_mel(prepared.dataset.clips[index].path, params)
        chunks.append(frame_windows(logmel, params))
        if training and offset:
            chunks.append(frame_windows(logmel, params, OFFSET_FRAMES))
    return np.concatenate(chunks)


_BACKBONE: dict[str, Any] = {}


def friendly_backbone(download: bool = True) -> Any:
    """The loaded port rearranged by :func:`~tagger.train.musicnn.layouts.fast_layout` (the exported layout; built
    once per process)."""
    if "model" not in _BACKBONE:
        port, _ = load_pretrained(download=download)
        _BACKBONE["model"] = fast_layout(port)
    return _BACKBONE["model"]


def int8_parity(
    prepared: Prepared, config: TransferConfig, fold: FoldResult, scratch: Path, workers: int, download: bool
) -> None:
    """Convert the fold's backbone + head to int8 (calibrated on its training windows only) and score its test
    clips through the tagger's :class:`~tagger.model.Classifier`; fills ``fold.int8_*``."""
    genres = prepared.dataset.genres
    model = build_export_model(friendly_backbone(download), fold.head, genres, config.msd_tags, None)
    calibration = clip_windows(prepared, fold.train, training=True, offset=config.offset_windows)
    path = scratch / "fold.tflite"
    outputs = convert_shipped(model, config.quantization, calibration, path, config.calibration_windows, config.seed)
    card = {
        "name": "fold", "version": "0", "model_file": path.name, "features": config.features.to_dict(),
        "heads": heads_for_card(genres, outputs, config.msd_tags), "default_head": "gtzan",
        "embedding_output": outputs["embedding"],
    }  # fmt: skip
    write_card(card, scratch / "fold.json")
    classifier = Classifier(ModelCard.load(scratch / "fold.json"), threads=workers, batch_size=32)
    windows = clip_windows(prepared, fold.test, training=False)
    int8_probabilities = classifier.predict(windows).probabilities["gtzan"]
    data = as_window_set(fold.test_table)
    fold.int8_scores = score(int8_probabilities, data, genres)
    fold.int8_agreement = agreement(fold.probabilities, int8_probabilities, data)
    fold.int8_bytes = path.stat().st_size


def lists_3fold(dataset: Dataset, lists_dir: Path) -> list[tuple[str, list[int], list[int]]]:
    """``(test list, train indices, test indices)``: each fault-filtered list, tested by training on the other two."""
    by_key = {clip.key: i for i, clip in enumerate(dataset.clips)}
    members = {
        part: sorted(by_key[k] for k in read_list(lists_dir / f"fault_filtered_{part}.txt") if k in by_key)
        for part in ("train", "valid", "test")
    }
    return [
        (part, sorted(i for other, idx in members.items() if other != part for i in idx), members[part])
        for part in members
    ]
