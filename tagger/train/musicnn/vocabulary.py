"""The vocabularies' thresholds (msd tags, GTZAN genres, the ``genres`` margin scores) and their evidence.

The rule for one cut-off is :func:`tagger.train.thresholds.best_f1_threshold`; this module says on which
scores and against which clips each label's cut-off is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger.aggregate import aggregate
from tagger.model import Head
from tagger.train.musicnn.config import Prepared, TransferConfig
from tagger.train.musicnn.export import VocabularySpec, margin_scores
from tagger.train.musicnn.folds import FoldResult, window_table
from tagger.train.musicnn.pretrained import MSD_LABELS
from tagger.train.musicnn.softmax_head import track_probabilities
from tagger.train.musicnn.zero_shot import GTZAN_TO_MSD
from tagger.train.thresholds import MIN_TRUSTED_F1, UNMAPPED_THRESHOLD, Threshold, best_f1_threshold, cross_validated_f1

THRESHOLD_FLOOR = 2 / 256  # two int8 steps of a 0..1 output: a finer cut-off is below the model's resolution


def mapped_positives(tag: str, genres: Sequence[str], labels: np.ndarray) -> np.ndarray | None:
    """Clips whose GTZAN genre maps to MSD ``tag`` (None when no genre does)."""
    owners = [g for g, tags in GTZAN_TO_MSD.items() if tag in tags and g in genres]
    if not owners:
        return None
    return np.isin(labels, [list(genres).index(g) for g in owners])


def track_means(values: np.ndarray, tracks: np.ndarray, order: Sequence[int]) -> np.ndarray:
    return np.stack([values[tracks == t].mean(axis=0) for t in order])


@dataclass
class Thresholds:
    """Raw thresholds (msd head, GTZAN genres of the vocabulary), margin-score thresholds (``genres``), evidence."""

    msd: dict[str, float]
    gtzan: dict[str, float]
    genres: dict[str, float]
    evidence: dict[str, Any]


def choose_thresholds(
    prepared: Prepared,
    config: TransferConfig,
    cv_folds: Sequence[FoldResult],
    splits: Sequence[tuple[Sequence[int], Sequence[int]]],
) -> Thresholds:
    """Per-label thresholds, each maximising F1 of "label written" vs "clip of the mapped genre" on the sample.

    MSD tags: on the clips' track-mean tag scores (the backbone is not trained here, so every clip's
    score is out-of-sample); their CV F1 (threshold chosen on each fold's training clips, scored on its
    test clips) is reported beside. GTZAN genres of the vocabulary: on the CV folds' *held-out*
    probabilities (every repeat), since the head's probabilities on its own training clips are
    over-confident. Unmapped MSD tags, and mapped ones whose best F1 is below
    :data:`~tagger.train.thresholds.MIN_TRUSTED_F1`: :data:`~tagger.train.thresholds.UNMAPPED_THRESHOLD`.
    """
    genres = prepared.dataset.genres
    labels = prepared.labels
    order = sorted(prepared.outputs)
    table = window_table(prepared, order, training=False)
    taggram_tracks = track_means(table.blocks["taggram"], table.tracks, order)
    clip_labels = labels[order]
    msd: dict[str, float] = {}
    evidence: dict[str, Any] = {"msd": {}, "gtzan": {}, "genres": {}}
    position = {clip: n for n, clip in enumerate(order)}
    local_splits = [([position[i] for i in tr if i in position], [position[i] for i in te if i in position])
                    for tr, te in splits]  # fmt: skip
    trusted: dict[str, np.ndarray] = {}  # tag -> positives, for tags whose GTZAN evidence is usable
    for tag in config.msd_tags:
        scores = taggram_tracks[:, MSD_LABELS.index(tag)]
        positive = mapped_positives(tag, genres, clip_labels)
        if positive is None:
            msd[tag] = UNMAPPED_THRESHOLD
            evidence["msd"][tag] = {"value": msd[tag], "rule": "unmapped", "sample_max": float(scores.max())}
            continue
        chosen = best_f1_threshold(scores, positive, THRESHOLD_FLOOR)
        entry = {**_threshold_dict(chosen), "cv": cross_validated_f1(scores, positive, local_splits, THRESHOLD_FLOOR)}
        if chosen.f1 < MIN_TRUSTED_F1:
            msd[tag] = UNMAPPED_THRESHOLD
            evidence["msd"][tag] = {
                **entry,
                "value": msd[tag],
                "rule": f"mapped, but best F1 {chosen.f1:.2f} < {MIN_TRUSTED_F1}: treated as unmapped",
                "f1_optimal": chosen.value,
            }
            continue
        msd[tag] = chosen.value
        trusted[tag] = positive
        evidence["msd"][tag] = entry

    # GTZAN genres of the vocabulary: held-out probabilities of every CV fold.
    held_out_p: list[np.ndarray] = []
    held_out_label: list[int] = []
    for fold in cv_folds:
        ids, means = track_probabilities(fold.probabilities, fold.test_table.tracks)
        held_out_p.append(means)
        held_out_label += [int(labels[i]) for i in ids]
    probs = np.concatenate(held_out_p)
    truth = np.asarray(held_out_label)
    gtzan: dict[str, float] = {}
    for genre in config.vocabulary_gtzan:
        g = list(genres).index(genre)
        chosen = best_f1_threshold(probs[:, g], truth == g, THRESHOLD_FLOOR)
        gtzan[genre] = chosen.value
        evidence["gtzan"][genre] = {**_threshold_dict(chosen), "on": "CV held-out track probabilities, all repeats"}

    # The vocabulary's margin scores: thresholds re-chosen on their own track means (near 0.5 by construction).
    spec = VocabularySpec(
        config.msd_tags, tuple(msd[t] for t in config.msd_tags),
        config.vocabulary_gtzan, tuple(gtzan[g] for g in config.vocabulary_gtzan),
    )  # fmt: skip
    genres_thresholds: dict[str, float] = {}
    margins = margin_scores(table.blocks["taggram"], np.zeros((len(table), len(genres))), spec, genres)
    margin_tracks = track_means(margins, table.tracks, order)
    for j, tag in enumerate(config.msd_tags):
        if tag not in trusted:
            genres_thresholds[tag] = 0.5  # the margin score is 0.5 exactly at the raw threshold
            continue
        chosen = best_f1_threshold(margin_tracks[:, j], trusted[tag], THRESHOLD_FLOOR)
        genres_thresholds[tag] = chosen.value
        evidence["genres"][tag] = _threshold_dict(chosen)
    fold_margins, fold_truth = [], []
    for fold in cv_folds:
        m = margin_scores(fold.test_table.blocks["taggram"], fold.probabilities, spec, genres)
        ids, means = track_probabilities(m, fold.test_table.tracks)
        fold_margins.append(means)
        fold_truth += [int(labels[i]) for i in ids]
    held_margins = np.concatenate(fold_margins)
    for k, genre in enumerate(config.vocabulary_gtzan):
        column = len(config.msd_tags) + k
        chosen = best_f1_threshold(held_margins[:, column], np.asarray(fold_truth) == list(genres).index(genre),
                                   THRESHOLD_FLOOR)  # fmt: skip
        genres_thresholds[genre] = chosen.value
        evidence["genres"][genre] = {**_threshold_dict(chosen), "on": "CV held-out margin scores, all repeats"}
    return Thresholds(msd, gtzan, genres_thresholds, evidence)


def _threshold_dict(chosen: Threshold) -> dict[str, Any]:
    return {"value": chosen.value, "f1": chosen.f1, "precision": chosen.precision, "recall": chosen.recall,
            "positives": chosen.positives}  # fmt: skip


def vocabulary_evidence(
    prepared: Prepared, config: TransferConfig, cv_folds: Sequence[FoldResult], thresholds: Thresholds
) -> dict[str, Any]:
    """How each vocabulary tags the sample's clips at ``top_k=1`` through :func:`tagger.aggregate.aggregate`.

    Uses the CV folds' held-out GTZAN probabilities and the shipped thresholds. A clip counts as right
    when the written genre names its GTZAN genre (``rock``/``classic rock`` for rock, ``metal``/``heavy
    metal`` for metal, the genre itself otherwise); "other" when it writes another label, "nothing" when
    no label passes its threshold.
    """
    genres = prepared.dataset.genres
    labels = prepared.labels
    spec = spec_for(config, thresholds)
    heads = {
        "gtzan": Head("gtzan", tuple(genres)),
        "msd": Head("msd", config.msd_tags, "multilabel", thresholds=thresholds.msd),
        "genres": Head("genres", spec.labels, "multilabel", thresholds=thresholds.genres),
    }
    accepted = {g: {g, *GTZAN_TO_MSD.get(g, ())} for g in genres}
    counts: dict[str, dict[str, dict[str, int]]] = {name: {} for name in heads}
    written: dict[str, dict[str, dict[str, int]]] = {name: {} for name in heads}  # wrong labels written, per genre
    for fold in cv_folds:
        taggram = fold.test_table.blocks["taggram"]
        sources = {
            "gtzan": fold.probabilities,
            "msd": taggram[:, [MSD_LABELS.index(t) for t in config.msd_tags]],
            "genres": margin_scores(taggram, fold.probabilities, spec, genres),
        }
        for clip in fold.test:
            rows = fold.test_table.tracks == clip
            genre = genres[labels[clip]]
            for name, head in heads.items():
                chosen = aggregate(sources[name][rows], head, top_k=1).chosen
                label = next((lab for lab in head.labels if chosen and head.genre_name(lab) == chosen[0]), None)
                outcome = "nothing" if not chosen else ("right" if label in accepted[genre] else "other")
                entry = counts[name].setdefault(genre, {"right": 0, "other": 0, "nothing": 0})
                entry[outcome] += 1
                if outcome == "other" and label is not None:
                    wrong = written[name].setdefault(genre, {})
                    wrong[label] = wrong.get(label, 0) + 1
    summary: dict[str, Any] = {}
    for name, per_genre in counts.items():
        total = {k: sum(v[k] for v in per_genre.values()) for k in ("right", "other", "nothing")}
        clips = sum(total.values())
        macro_right = float(np.mean([v["right"] / max(sum(v.values()), 1) for v in per_genre.values()]))
        summary[name] = {"per_genre": per_genre, "total": total, "clips": clips, "right_rate": total["right"] / clips,
                         "macro_right_rate": macro_right, "wrong_labels": written[name]}  # fmt: skip
    return summary


def spec_for(config: TransferConfig, thresholds: Thresholds) -> VocabularySpec:
    return VocabularySpec(
        config.msd_tags, tuple(thresholds.msd[t] for t in config.msd_tags),
        config.vocabulary_gtzan, tuple(thresholds.gtzan[g] for g in config.vocabulary_gtzan),
    )  # fmt: skip
