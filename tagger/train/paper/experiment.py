"""One experiment end to end: scan, features (cached), split, train, evaluate, convert, card, report.

``holdout`` protocols (``random``, ``fault-filtered``) train once, evaluate on the test part and
ship that model. ``cv`` trains one model per fold to measure (float and int8, each on its
held-out fold), then trains the shipped model on every clip for the median of the folds'
early-stopped epoch counts, so its card carries the cross-validated figures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tagger.features import FeatureParams
from tagger.model import Classifier, ModelCard
from tagger.train.cache import FeatureCache, extract
from tagger.train.card import write_card
from tagger.train.convert import Converted, convert, output_names
from tagger.train.datasets import Dataset, scan
from tagger.train.evaluate import Scores, agreement, score, summarise
from tagger.train.paper import markdown
from tagger.train.paper.cnn import describe
from tagger.train.paper.cnn_card import build_card
from tagger.train.paper.configs import Config
from tagger.train.paper.train import TrainResult, train
from tagger.train.splits import Split, ValidFrom, fault_filtered, random_split, repeated_kfold
from tagger.train.windows import WindowSet, make_windows, measure_normalisation

SplitName = Literal["random", "fault-filtered", "cv"]
PARITY_TARGETS = {"macro_f1_points": 1.0, "track_agreement": 0.98, "max_bytes": 2 * 1024 * 1024}


@dataclass
class Options:
    """What ``tagger-train run`` was asked to do."""

    config: Config
    data: Path
    split: SplitName
    out: Path
    name: str | None = None
    version: str = "1"
    cache_dir: Path | None = None
    folds: int = 5
    repeats: int = 3
    test_fraction: float = 0.2
    valid_from: ValidFrom = "lists"
    genres: list[str] | None = None
    licence: str = "MIT (model weights); trained on the data named in data_fingerprint"
    workers: int = 2
    log: Callable[[str], None] = field(default=print)

    @property
    def model_name(self) -> str:
        return self.name or self.config.name


@dataclass
class FoldOutcome:
    """One trained model and its scores on one evaluation set."""

    split: Split
    params: FeatureParams
    result: TrainResult
    converted: Converted
    float_scores: Scores
    int8_scores: Scores
    agreement: float
    train_windows: int


@dataclass
class Prepared:
    dataset: Dataset
    features: dict[int, np.ndarray]
    failed: dict[str, str]
    cache_stats: dict[str, int]
    seconds: float


def prepare(options: Options) -> Prepared:
    """Scan the data and load every clip's log-mel (from the cache when possible)."""
    started = time.perf_counter()
    dataset = scan(options.data, options.genres)
    options.log(f"{len(dataset.clips)} clips in {len(dataset.genres)} genres under {dataset.root}")
    cache = FeatureCache(options.cache_dir)
    features, failed = extract(dataset, options.config.features, cache, workers=options.workers)
    stats = {"hits": cache.stats.hits, "decoded": cache.stats.decoded, "failed": cache.stats.failed}
    options.log(f"features: {stats['hits']} from cache, {stats['decoded']} decoded, {len(failed)} unreadable")
    return Prepared(dataset, features, failed, stats, time.perf_counter() - started)


def _usable(split: Split, features: dict[int, np.ndarray]) -> Split:
    keep = lambda part: tuple(i for i in part if i in features)  # noqa: E731
    skipped = sum(len(p) - len(keep(p)) for p in (split.train, split.valid, split.test))
    info = {**split.info, "skipped_unreadable": skipped}
    return Split(split.protocol, keep(split.train), keep(split.valid), keep(split.test), split.fold, split.repeat, info)


def fit_and_evaluate(
    options: Options, prepared: Prepared, split: Split, out_dir: Path, epochs: int | None = None
) -> FoldOutcome:
    """Train on ``split.train`` (early stopping on ``split.valid``), convert into ``out_dir``,
    and score Keras and the int8 model (through the tagger's Classifier) on ``split.test``."""
    labels = prepared.dataset.labels()
    genres = prepared.dataset.genres
    mean, std = measure_normalisation([prepared.features[i] for i in split.train])
    params = options.config.features.with_normalisation(mean, std)
    config = options.config.replace(features=params)
    train_set = make_windows(prepared.features, split.train, labels, params, config.train_hop_frames)
    valid_set = make_windows(prepared.features, split.valid, labels, params) if split.valid else None
    test_set = make_windows(prepared.features, split.test, labels, params)
    result = train(config, train_set, valid_set, len(genres), epochs=epochs, log=options.log)
    options.log(
        f"trained {result.epochs_run} epochs (best {result.best_epoch}) on {len(train_set)} windows "
        f"in {result.seconds:.0f} s"
    )
    converted = convert(result.export_model, train_set.windows, out_dir, options.model_name, seed=config.seed)
    card_path = out_dir / f"{options.model_name}.json"
    write_card(_card(options, config, genres, converted, result), card_path)
    keras_probabilities = _keras_predict(result, test_set)
    classifier = Classifier(ModelCard.load(card_path), threads=options.workers, batch_size=32)
    int8_probabilities = classifier.predict(test_set.windows).probabilities[config.head]
    return FoldOutcome(
        split=split,
        params=params,
        result=result,
        converted=converted,
        float_scores=score(keras_probabilities, test_set, genres),
        int8_scores=score(int8_probabilities, test_set, genres),
        agreement=agreement(keras_probabilities, int8_probabilities, test_set),
        train_windows=len(train_set),
    )


def _keras_predict(result: TrainResult, data: WindowSet) -> np.ndarray:
    return np.asarray(result.train_model.predict(data.windows, batch_size=64, verbose=0), dtype=np.float32)


def _card(
    options: Options, config: Config, genres: tuple[str, ...], converted: Converted, result: TrainResult, **extra: Any
) -> dict[str, Any]:
    return build_card(
        name=options.model_name,
        version=options.version,
        config=config,
        params=config.features,
        genres=genres,
        outputs=converted.outputs,
        float_outputs=output_names(converted.float_path.read_bytes()),
        model_file=converted.int8_path.name,
        float_model_file=converted.float_path.name,
        architecture={"layers": describe(result.export_model), **architecture_notes(config)},
        licence=options.licence,
        **extra,
    )


def architecture_notes(config: Config) -> dict[str, Any]:
    """Every choice the paper is silent on, in words, for the card."""
    net = config.network
    params = config.features
    return {
        "family": "paper: 3 x (conv + max-pool) then dense softmax",
        "input": f"{params.window_frames} frames x {params.n_mels} mel bands at {params.sample_rate} Hz "
        f"({params.window_seconds:.2f} s), layout frames_mels",
        "choices_where_paper_is_silent": {
            "stft": f"n_fft {params.n_fft}, hop {params.hop_length}, periodic Hann, no centre padding, "
            f"power 2, slaney mel filters fmin {params.fmin} fmax {params.fmax or params.sample_rate / 2}",
            "log": "10*log10(max(mel power, 1e-10)) dB, then (x - mean) / std with one scalar mean/std measured "
            "on the training clips",
            "convolutions": f"1-D along time, mel bands as input channels; filters {list(net.filters)}, kernel "
            f"{net.kernel} frames, stride 1, valid padding, ReLU"
            + (", batch norm before ReLU" if net.batch_norm else ""),
            "pooling": f"max-pool {list(net.pools)} frames after each convolution, then global mean and max over "
            "time, concatenated (the embedding output)",
            "dense": "softmax over the genres" + (f", dropout {net.dropout} before it" if net.dropout else ""),
            "initialisation": "Keras defaults (Glorot uniform kernels, zero biases)",
            "optimizer": f"{config.optimizer}, learning rate {config.learning_rate}, batch {config.batch_size}",
            "epochs": f"up to {config.max_epochs}, early stopping on validation loss (patience {config.patience}, "
            "best weights kept); validation carved from the training clips, never from the test clips",
            "loss": "sparse categorical cross-entropy"
            + (", windows weighted by inverse genre frequency" if config.class_weight else ""),
            "windows": f"training hop {config.train_hop_frames} frames, evaluation hop {params.window_hop_frames} "
            "frames; a track's genre is the argmax of the mean of its windows' probabilities",
            "augmentation": (
                f"gain ±{config.augmentation.gain_db} dB, {config.augmentation.time_masks} time mask(s) up to "
                f"{config.augmentation.time_mask_frames} frames, {config.augmentation.freq_masks} frequency mask(s) "
                f"up to {config.augmentation.freq_mask_bands} bands"
                if config.augmentation.active
                else "none"
            ),
        },
    }


def _parity(float_f1: float, int8_f1: float, track_agreement: float, size: int, evaluated_on: str) -> dict[str, Any]:
    return {
        "evaluated_on": evaluated_on,
        "track_agreement": track_agreement,
        "macro_f1_float": float_f1,
        "macro_f1_int8": int8_f1,
        "macro_f1_difference_points": abs(float_f1 - int8_f1) * 100,
        "int8_bytes": size,
        "targets": PARITY_TARGETS,
        "met": bool(
            abs(float_f1 - int8_f1) * 100 <= PARITY_TARGETS["macro_f1_points"]
            and track_agreement >= PARITY_TARGETS["track_agreement"]
            and size < PARITY_TARGETS["max_bytes"]
        ),
    }


def run(options: Options) -> dict[str, Any]:
    """Run the experiment ``options`` describes; write models, card, report and confusion matrix; return the card."""
    prepared = prepare(options)
    options.out.mkdir(parents=True, exist_ok=True)
    card = _run_cv(options, prepared) if options.split == "cv" else _run_holdout(options, prepared)
    markdown.write(options.out, card, prepared.dataset.genres)
    options.log(f"wrote {options.out / (options.model_name + '.tflite')} and its card, report.md, confusion.png")
    return card


def _split_info(options: Options, prepared: Prepared, split: Split) -> dict[str, Any]:
    return {
        **split.describe(prepared.dataset),
        "data_root": str(prepared.dataset.root),
        "clips_found": len(prepared.dataset.clips),
        "unreadable": sorted(prepared.failed),
        "feature_cache": prepared.cache_stats,
    }


def _run_holdout(options: Options, prepared: Prepared) -> dict[str, Any]:
    dataset = prepared.dataset
    seed = options.config.seed
    if options.split == "random":
        split = random_split(dataset, options.test_fraction, options.config.valid_fraction, seed)
    else:
        split = fault_filtered(
            dataset, valid_from=options.valid_from, valid_fraction=options.config.valid_fraction, seed=seed
        )
    split = _usable(split, prepared.features)
    if not split.train or not split.test:
        raise ValueError(
            f"the {split.protocol} split leaves {len(split.train)} training and {len(split.test)} test clips"
        )
    options.log(
        f"{split.protocol} split: {len(split.train)} train, {len(split.valid)} valid, {len(split.test)} test clips"
    )
    outcome = fit_and_evaluate(options, prepared, split, options.out)
    config = options.config.replace(features=outcome.params)
    metrics = {
        "protocol": (
            f"{split.protocol} hold-out of {len(prepared.features)} readable clips: trained on {len(split.train)} "
            f"(early stopping on {len(split.valid)}), scored on {len(split.test)} test clips"
        ),
        "clips_evaluated": outcome.float_scores.tracks,
        "float": outcome.float_scores.to_dict(),
        "int8": outcome.int8_scores.to_dict(),
    }
    parity = _parity(
        outcome.float_scores.macro["f1"], outcome.int8_scores.macro["f1"], outcome.agreement,
        outcome.converted.int8_bytes, f"{split.protocol} test split ({outcome.float_scores.tracks} tracks)",
    )  # fmt: skip
    training = {
        "epochs_run": outcome.result.epochs_run,
        "best_epoch": outcome.result.best_epoch,
        "train_windows": outcome.train_windows,
        "seconds": round(outcome.result.seconds, 1),
        "history": outcome.result.history,
    }
    card = _card(
        options, config, dataset.genres, outcome.converted, outcome.result,
        split=_split_info(options, prepared, split), metrics=metrics, parity=parity, training=training,
        data_fingerprint=dataset.fingerprint(),
    )  # fmt: skip
    write_card(card, options.out / f"{options.model_name}.json")
    return card


def _run_cv(options: Options, prepared: Prepared) -> dict[str, Any]:
    dataset = prepared.dataset
    config = options.config
    splits = [
        _usable(s, prepared.features)
        for s in repeated_kfold(dataset, options.folds, options.repeats, config.valid_fraction, config.seed)
    ]
    outcomes: list[FoldOutcome] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cv-", dir=options.out) as scratch:
        for number, split in enumerate(splits, start=1):
            options.log(
                f"fold {number}/{len(splits)} (repeat {split.repeat}, fold {split.fold}): "
                f"{len(split.train)} train, {len(split.valid)} valid, {len(split.test)} test clips"
            )
            outcome = fit_and_evaluate(options, prepared, split, Path(scratch))
            options.log(
                f"  track macro-F1 float {outcome.float_scores.macro['f1']:.3f} "
                f"int8 {outcome.int8_scores.macro['f1']:.3f}, agreement {outcome.agreement:.3f}"
            )
            outcome.result.train_model = outcome.result.export_model = None  # free the fold's model
            outcomes.append(outcome)
    cv_seconds = time.perf_counter() - started
    float_summary = summarise([o.float_scores for o in outcomes], dataset.genres)
    int8_summary = summarise([o.int8_scores for o in outcomes], dataset.genres)
    agreements = [o.agreement for o in outcomes]
    protocol = (
        f"repeated stratified {options.folds}-fold CV x {options.repeats} repeats on {len(prepared.features)} clips "
        f"({len(outcomes)} models, each scored on its held-out fold)"
    )
    metrics = {
        "protocol": protocol,
        "clips_evaluated": float_summary["tracks"] // max(options.repeats, 1),
        "float": float_summary,
        "int8": int8_summary,
        "per_fold": [
            {
                "repeat": o.split.repeat,
                "fold": o.split.fold,
                "train_clips": len(o.split.train),
                "valid_clips": len(o.split.valid),
                "test_clips": len(o.split.test),
                "best_epoch": o.result.best_epoch,
                "epochs_run": o.result.epochs_run,
                "train_seconds": round(o.result.seconds, 1),
                "float_track_accuracy": o.float_scores.track_accuracy,
                "float_macro_f1": o.float_scores.macro["f1"],
                "int8_track_accuracy": o.int8_scores.track_accuracy,
                "int8_macro_f1": o.int8_scores.macro["f1"],
                "track_agreement": o.agreement,
            }
            for o in outcomes
        ],
    }
    pooled_agreement = float(np.mean(agreements))
    parity = _parity(
        float_summary["macro"]["f1"]["mean"], int8_summary["macro"]["f1"]["mean"], pooled_agreement,
        max(o.converted.int8_bytes for o in outcomes), f"held-out folds ({protocol})",
    )  # fmt: skip
    parity["track_agreement_min_fold"] = float(min(agreements))
    all_clips = tuple(sorted(prepared.features))
    final_epochs = max(config.min_epochs, round(statistics.median(o.result.best_epoch for o in outcomes)))
    training: dict[str, Any] = {
        "cv_seconds": round(cv_seconds, 1),
        "mean_train_seconds_per_fold": round(float(np.mean([o.result.seconds for o in outcomes])), 1),
        "final_epochs": final_epochs,
        "final_epochs_rule": "median of the folds' early-stopped best epochs (chosen on validation, not test)",
    }
    options.log(f"final model: all {len(all_clips)} clips, {final_epochs} epochs")
    final_split = Split("all", all_clips, (), all_clips, info={"note": "final model: every clip"})
    shipped = fit_and_evaluate(options, prepared, final_split, options.out, epochs=final_epochs)
    training.update(
        final_seconds=round(shipped.result.seconds, 1), final_train_windows=shipped.train_windows,
        shipped_model=f"trained on all {len(all_clips)} clips; the metrics are from the CV folds",
    )  # fmt: skip
    parity["final_model"] = {
        "evaluated_on": f"all {len(all_clips)} clips (its training data: parity only, not accuracy)",
        "track_agreement": shipped.agreement,
        "macro_f1_float": shipped.float_scores.macro["f1"],
        "macro_f1_int8": shipped.int8_scores.macro["f1"],
        "int8_bytes": shipped.converted.int8_bytes,
        "float_bytes": shipped.converted.float_bytes,
    }
    split_info = _split_info(options, prepared, splits[0])
    split_info.update(protocol="cv", counts={"clips": len(all_clips)}, per_genre={"clips": dataset.counts()})
    split_info["final_model_clips"] = len(all_clips)
    card = _card(
        options, config.replace(features=shipped.params), dataset.genres, shipped.converted, shipped.result,
        split=split_info, metrics=metrics, parity=parity, training=training, data_fingerprint=dataset.fingerprint(),
    )  # fmt: skip
    write_card(card, options.out / f"{options.model_name}.json")
    return card
