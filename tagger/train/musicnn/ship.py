"""The shipped model: the head on every clip, the export graph in its shipped form and in float32,
their parity on every clip, the zero-shot check and the timings.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.model import Classifier, ModelCard
from tagger.train.card import write_card
from tagger.train.convert import float_tflite, write
from tagger.train.evaluate import agreement
from tagger.train.musicnn.config import Options, Prepared, TransferConfig
from tagger.train.musicnn.export import build_export_model, convert_shipped, heads_for_card, margin_scores
from tagger.train.musicnn.folds import as_window_set, clip_windows, friendly_backbone, window_table
from tagger.train.musicnn.pretrained import MSD_LABELS
from tagger.train.musicnn.softmax_head import Selection, SoftmaxHead, fit_head, select
from tagger.train.musicnn.vocabulary import Thresholds, spec_for
from tagger.train.musicnn.zero_shot import GENRE_TAGS, ClipResult, ZeroShotReport, tflite_predictor
from tagger.train.speed import make_long_track, time_budgets, time_model


@dataclass
class Shipped:
    head: SoftmaxHead
    selection: Selection
    outputs: dict[str, str]
    float_outputs: dict[str, str]
    int8_bytes: int
    float_bytes: int
    zero_shot: dict[str, Any]
    parity: dict[str, Any]
    speed: dict[str, Any]


def fit_shipped(options: Options, prepared: Prepared, thresholds: Thresholds, log: Callable[[str], None]) -> Shipped:
    config = options.config
    genres = prepared.dataset.genres
    everything = sorted(prepared.outputs)
    table = window_table(prepared, everything, training=True, offset=config.offset_windows)
    selection = select(table, len(genres), config.c_grid, config.feature_sets, config.inner_folds, config.seed)
    head = fit_head(table, selection.feature_set, selection.c, len(genres), config.seed)
    log(f"shipped head: {selection.feature_set}, C={selection.c:g} (inner CV on all {len(everything)} clips)")
    spec = spec_for(config, thresholds)
    model = build_export_model(friendly_backbone(options.download), head, genres, config.msd_tags, spec)
    int8_path = options.out / f"{options.name}.tflite"
    float_path = options.out / f"{options.name}.float.tflite"
    calibration = clip_windows(prepared, everything, training=True, offset=config.offset_windows)
    outputs = convert_shipped(
        model, config.quantization, calibration, int8_path, config.calibration_windows, config.seed
    )
    float_outputs = write(float_tflite(model), float_path)

    # Parity of the shipped file against its float graph, on every clip (its training data: parity only).
    draft = {
        "name": options.name, "version": options.version, "model_file": int8_path.name,
        "features": config.features.to_dict(), "default_head": config.default_head,
        "heads": heads_for_card(genres, outputs, config.msd_tags, thresholds.msd, spec, thresholds.genres),
        "embedding_output": outputs["embedding"], "max_windows": config.max_windows,
    }  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="ship-", dir=options.out))
    try:
        write_card(draft, scratch / "draft.json")
        (scratch / int8_path.name).write_bytes(int8_path.read_bytes())
        classifier = Classifier(ModelCard.load(scratch / "draft.json"), threads=options.workers, batch_size=32)
        windows = clip_windows(prepared, everything, training=False)
        eval_table = window_table(prepared, everything, training=False)
        prediction = classifier.predict(windows)
        int8_taggram = tflite_predictor(scratch / int8_path.name)(windows)
        long_track = options.speed_file
        if long_track is None:
            long_track = make_long_track([prepared.dataset.clips[i].path for i in everything[::7]],
                                         scratch / "long-track.mp3")  # fmt: skip
        speed = measure_speed(scratch / "draft.json", windows[:64], long_track, config, log)
        # The same graph in float32, for comparison (not shipped): its own output tensor names.
        float_draft = {**draft, "model_file": float_path.name, "embedding_output": float_outputs["embedding"],
                       "heads": heads_for_card(genres, float_outputs, config.msd_tags, thresholds.msd, spec,
                                               thresholds.genres)}  # fmt: skip
        write_card(float_draft, scratch / "float.json")
        (scratch / float_path.name).write_bytes(float_path.read_bytes())
        speed["float32_model_ms_per_window"] = {str(t): time_model(scratch / "float.json", windows[:64], t)
                                                for t in (1, 2)}  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    data = as_window_set(eval_table)
    float_gtzan = head.predict_proba(eval_table)
    float_genres = margin_scores(eval_table.blocks["taggram"], float_gtzan, spec, genres)
    parity = {
        "evaluated_on": f"all {len(everything)} clips, {len(windows)} windows (the shipped head's training data: "
        "agreement only, not accuracy)",
        "gtzan_track_agreement": agreement(float_gtzan, prediction.probabilities["gtzan"], data),
        "gtzan_max_abs_difference": float(np.abs(float_gtzan - prediction.probabilities["gtzan"]).max()),
        "msd_mean_abs_difference": float(np.abs(
            eval_table.blocks["taggram"][:, [MSD_LABELS.index(t) for t in config.msd_tags]]
            - prediction.probabilities["msd"]).mean()),
        "genres_mean_abs_difference": float(np.abs(float_genres - prediction.probabilities["genres"]).mean()),
        "embedding_relative_error": float(np.linalg.norm(prediction.embeddings - eval_table.blocks["embedding"])
                                          / np.linalg.norm(eval_table.blocks["embedding"])),  # type: ignore[operator]
    }  # fmt: skip
    float_taggrams = {i: prepared.outputs[i].grid.taggram for i in everything}
    int8_taggrams = {i: int8_taggram[eval_table.tracks == i] for i in everything}
    zero_shot = {"float": zero_shot_counts(float_taggrams, prepared), "int8": zero_shot_counts(int8_taggrams, prepared)}
    log(
        f"int8 {int8_path.stat().st_size} bytes; zero-shot top-3 float {zero_shot['float']['total']}, "
        f"int8 {zero_shot['int8']['total']}; gtzan agreement {parity['gtzan_track_agreement']:.3f}"
    )
    return Shipped(head, selection, outputs, float_outputs, int8_path.stat().st_size, float_path.stat().st_size,
                   zero_shot, parity, speed)  # fmt: skip


def measure_speed(
    card_path: Path, windows: np.ndarray, long_track: Path | None, config: TransferConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """Model milliseconds per window (the shipped file, batch 8 as the tagger runs it, 1 and 2 threads), and with a
    long track: its full decode time and the tagger's end-to-end time per window budget."""
    speed: dict[str, Any] = {"model_ms_per_window": {str(t): time_model(card_path, windows, t) for t in (1, 2)}}
    if long_track is not None:
        speed["long_track"] = time_budgets(card_path, long_track, (*config.budgets, None))
    log(f"speed: {speed['model_ms_per_window']}")
    return speed


def zero_shot_counts(taggrams: dict[int, np.ndarray], prepared: Prepared) -> dict[str, Any]:
    """MSD top-3 genre-tag agreement per mapped GTZAN genre, from per-window taggrams of each clip."""
    columns = np.array([MSD_LABELS.index(t) for t in GENRE_TAGS])
    report = ZeroShotReport(top_k=3)
    for index, taggram in sorted(taggrams.items()):
        clip = prepared.dataset.clips[index]
        scores = taggram.mean(axis=0)
        order = np.argsort(-scores[columns], kind="stable")
        report.results.append(ClipResult(clip.genre, clip.path, scores, tuple(GENRE_TAGS[i] for i in order)))
    hit, total = report.total()
    return {"per_genre": {g: list(v) for g, v in report.hits().items()}, "total": [hit, total]}
