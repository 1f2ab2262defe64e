"""``musicnn-transfer``: the shipped default model, a linear genre head on the frozen MSD_musicnn backbone.

Why transfer rather than training from scratch: the GTZAN sample holds 181 clips (91 classical,
10 of each other genre), far too few to learn audio features; MSD_musicnn learnt them from
~200k Million Song Dataset tracks. So the backbone is frozen, its window outputs (200-d
embedding, 50-tag taggram) are computed once and cached (:mod:`tagger.train.musicnn.backbone`), and only a
standardised, class-balanced multinomial logistic regression is trained on them, at window
level, with ``C`` and the feature set chosen by inner CV on the training clips
(:mod:`tagger.train.musicnn.softmax_head`). Tracks are scored as the tagger scores them: argmax of the mean
of the windows' probabilities.

Fine-tuning the backbone is not done: with ~90 non-classical clips, updating 790k weights
overfits faster than anything the inner CV could pick up, costs CPU hours per fold here, and
would break the int8 layout check (:func:`~tagger.train.musicnn.port.integer_friendly` is proven
equal to the authors' graph only for their weights).

Protocols (all on the same data, all scored at track level):

* ``cv``: repeated stratified k-fold, the paper CNN trainer's exact folds
  (:func:`tagger.train.splits.repeated_kfold` with the same seed); random, so a test clip's artist
  is usually also in training (GTZAN is artist-heavy): optimistic.
* ``fault-filtered``: the artist-disjoint lists (Kereliuk et al. 2015): train on the sample's
  clips in the train+valid lists, test on those in the test list (the paper trainer's
  ``fault-filtered --valid-from train``). Honest about artists, but on this sample the test
  list holds 30 clips, 26 of them classical.
* ``lists-3fold``: each fault-filtered list in turn is the test part and the other two train
  (artist-disjoint across lists). Every listed clip is tested once, but a list may hold all
  of a genre's clips (all blues and country clips are in ``valid``, all rock and reggae in
  ``train``), so a fold cannot learn that genre: those test clips are left out of that fold's
  scores and counted.

int8 parity is measured through :class:`tagger.model.Classifier` on held-out clips: each
``parity`` fold's head and backbone are converted to int8 (calibrated on that fold's training
windows only) and run on its test clips.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tagger.features import FeatureParams
from tagger.train.cache import FeatureCache
from tagger.train.datasets import Dataset, scan
from tagger.train.evaluate import Scores, agreement, score, summarise
from tagger.train.musicnn.backbone import (
    SPREAD_BUDGETS,
    BackboneOutputs,
    ClipOutputs,
    all_outputs,
    checkpoint_fingerprint,
)
from tagger.train.musicnn.export import VocabularySpec, build_export_model, convert_float, margin_scores
from tagger.train.musicnn.port import MUSICNN_FEATURES
from tagger.train.musicnn.pretrained import MSD_LABELS
from tagger.train.musicnn.softmax_head import LinearHead, Selection, WindowTable, fit_head, select
from tagger.train.musicnn.zero_shot import GENRE_TAGS, GTZAN_TO_MSD
from tagger.train.splits import LISTS_DIR, fault_filtered, read_list, repeated_kfold
from tagger.train.thresholds import (
    MIN_TRUSTED_F1,
    UNMAPPED_THRESHOLD,
    Threshold,
    best_f1_threshold,
    cross_validated_f1,
)
from tagger.train.windows import WindowSet

TRAINER_VERSION = "0.1.0"
GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip
# Text written into files for each label (the models' labels are lower-case identifiers or MSD's own spelling).
GTZAN_NAMES = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco", "hiphop": "Hip-Hop",
    "jazz": "Jazz", "metal": "Metal", "pop": "Pop", "reggae": "Reggae", "rock": "Rock",
}  # fmt: skip
MSD_NAMES = {tag: " ".join(word.capitalize() for word in tag.split()) for tag in MSD_LABELS}
MSD_NAMES.update({"Hip-Hop": "Hip-Hop", "rnb": "R&B", "House": "House", "electronica": "Electronica"})
THRESHOLD_FLOOR = 2 / 256  # two int8 steps of a 0..1 output: a finer cut-off is below the model's resolution

LICENCE = (
    "Backbone weights: MSD_musicnn from musicnn 0.1.0 by Jordi Pons and Xavier Serra, (c) Music Technology Group, "
    "Universitat Pompeu Fabra 2019, ISC licence (see NOTICE); trained by its authors on the Million Song Dataset "
    "with last.fm tags. Genre head and thresholds: genre-tagger (MIT), fit on GTZAN clips (Tzanetakis & Cook "
    "2002), whose audio has no cleared licence: treat the head as for research and personal use."
)


@dataclass(frozen=True)
class TransferConfig:
    """Every choice of the ``musicnn-transfer`` configuration (recorded in the card)."""

    name: str = "musicnn-transfer"
    description: str = (
        "Frozen MSD_musicnn (Pons & Serra 2019) window embeddings (+ taggram, if inner CV prefers) -> standardised, "
        "class-balanced multinomial logistic regression over the GTZAN genres; int8 TFLite of backbone + head."
    )
    features: FeatureParams = MUSICNN_FEATURES
    feature_sets: tuple[str, ...] = ("embedding", "embedding+taggram")
    c_grid: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    inner_folds: int = 4
    offset_windows: bool = True  # half-hop shifted windows as extra training windows
    folds: int = 5
    repeats: int = 3
    parity_repeats: int = 1  # CV repeats whose folds are also converted to int8 and scored through Classifier
    quantization: str = "float16-weights"  # the shipped file's form: a key of QUANTIZATION_DETAIL
    calibration_windows: int = 256
    msd_tags: tuple[str, ...] = GENRE_TAGS  # the msd head's labels: the genre-like MSD tags
    vocabulary_gtzan: tuple[str, ...] = ("classical", "disco", "reggae")  # GTZAN genres MSD has no tag for
    budgets: tuple[int, ...] = SPREAD_BUDGETS
    max_windows: int = 4  # the card's default window budget (chosen from the window curve and timings)
    default_head: str = "gtzan"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = self.features.to_dict()
        return data


@dataclass
class Options:
    """What ``tagger-train transfer`` was asked to do."""

    data: Path
    out: Path
    config: TransferConfig = field(default_factory=TransferConfig)
    name: str = "musicnn"
    version: str = "1"
    cache_dir: Path | None = None
    lists_dir: Path = LISTS_DIR
    genres: list[str] | None = None
    workers: int = 2
    ship: Path | None = None  # copy the int8 model and its card here (tagger/models)
    compare: list[Path] = field(default_factory=list)  # other models' cards to show beside (paper CNN runs)
    speed_file: Path | None = None  # a long track to time decoding and the window budgets on
    log: Callable[[str], None] = print
    download: bool = True


@dataclass
class Prepared:
    dataset: Dataset
    outputs: dict[int, ClipOutputs]
    failed: dict[str, str]
    features: FeatureCache
    fingerprint: str
    seconds: float

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.dataset.labels())


def prepare(options: Options) -> Prepared:
    """Scan the clips and get every clip's backbone outputs (cached; the backbone is loaded only on a miss)."""
    from tagger.train.musicnn.port import build_musicnn, load_checkpoint_weights
    from tagger.train.musicnn.pretrained import locate_checkpoint

    started = time.perf_counter()
    dataset = scan(options.data, options.genres or list(GTZAN_GENRES))
    options.log(f"{len(dataset.clips)} clips in {len(dataset.genres)} genres under {dataset.root}")
    prefix = locate_checkpoint(download=options.download)
    fingerprint = checkpoint_fingerprint(prefix)
    features = FeatureCache(options.cache_dir)

    class LazyModel:
        """Build and load the port only if some clip's outputs are not cached."""

        model: Any = None

        def __call__(self, windows: np.ndarray, training: bool = False) -> Any:
            if self.model is None:
                self.model = build_musicnn()
                load_checkpoint_weights(self.model, prefix)
            return self.model(windows, training=training)

    directory = options.cache_dir / "musicnn-outputs" if options.cache_dir is not None else None
    backbone = BackboneOutputs(LazyModel(), options.config.features, features, directory, fingerprint,
                               options.config.budgets)  # fmt: skip
    outputs, failed = all_outputs(dataset, backbone)
    options.log(
        f"backbone outputs: {backbone.cached} from cache, {backbone.computed} computed, {len(failed)} unreadable"
    )
    return Prepared(dataset, outputs, failed, features, fingerprint, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------- tables


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


# ---------------------------------------------------------------------------------------------- folds


@dataclass
class FoldResult:
    """One head trained on ``train`` and scored on ``test`` (float, and int8 when converted)."""

    protocol: str
    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    selection: Selection
    head: LinearHead
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
    from tagger.train.musicnn.backbone import OFFSET_FRAMES, frame_windows

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
_LAYOUT = (
    "fast_layout (tagger/train/musicnn/port.py): each timbral block as an im2col (strided slices) and one 1x1 "
    "convolution (a matrix multiply over 266 / 469 values per output), every front-end block's ReLU and batch norm "
    "after its frequency max-pool"
)
# The shipped file's forms (TransferConfig.quantization), as the card describes them.
QUANTIZATION_DETAIL = {
    "float16-weights": f"{_LAYOUT}; float32 arithmetic, weights stored as float16 (half the file; dequantized "
    "once at load). The fastest form at parity on x86 without VNNI: int8 matrix multiplies gain ~1.3x there and "
    "flip ~1-2% of out-of-domain tracks (see tagger/train/musicnn_int8.py)",
    "int8-selective": f"{_LAYOUT}; int8 for the timbral im2col, matrix multiplies and max-pools (~85% of the "
    "multiply-adds), float32 for every other op; float32 input and outputs. Full-integer int8 leaves the embedding "
    "~30% off and flips ~10% of tracks: see tagger/train/musicnn_int8.py",
}


def friendly_backbone(download: bool = True) -> Any:
    """The loaded port rearranged by :func:`~tagger.train.musicnn.port.fast_layout` (the exported layout; built
    once per process)."""
    if "model" not in _BACKBONE:
        from tagger.train.musicnn.port import fast_layout, load_pretrained

        port, _ = load_pretrained(download=download)
        _BACKBONE["model"] = fast_layout(port)
    return _BACKBONE["model"]


def convert_int8(model: Any, calibration: np.ndarray, path: Path, config: TransferConfig) -> dict[str, str]:
    """The shipped form ``config.quantization`` of ``model``: float16 weights, or int8-selective
    (:func:`~tagger.train.musicnn_int8.selective_int8`, calibrated on a seeded sample of ``calibration`` windows,
    training windows only); returns the card's output tensor names."""
    from tagger.train.convert import representative
    from tagger.train.musicnn.export import float16_weights
    from tagger.train.musicnn_int8 import selective_int8, write

    if config.quantization == "float16-weights":
        return write(float16_weights(model), path)
    if config.quantization == "int8-selective":
        samples = representative(calibration, count=config.calibration_windows, seed=config.seed)
        return write(selective_int8(model, samples), path)
    raise ValueError(f"quantization {config.quantization!r}: one of {sorted(QUANTIZATION_DETAIL)}")


def heads_for_card(
    genres: Sequence[str],
    outputs: dict[str, str],
    msd_tags: Sequence[str],
    msd_thresholds: dict[str, float] | None = None,
    spec: VocabularySpec | None = None,
    genres_thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The card's ``heads``: gtzan (multiclass), msd (multilabel) and, with ``spec``, the ``genres`` vocabulary."""
    heads: dict[str, Any] = {
        "gtzan": {"labels": list(genres), "task": "multiclass", "output": outputs["gtzan"],
                  "tag_names": {g: GTZAN_NAMES.get(g, g) for g in genres}},
        "msd": {"labels": list(msd_tags), "task": "multilabel", "output": outputs["msd"],
                "thresholds": {t: round(v, 4) for t, v in (msd_thresholds or {}).items()},
                "tag_names": {t: MSD_NAMES[t] for t in msd_tags}},
    }  # fmt: skip
    if spec is not None:
        names = {**{t: MSD_NAMES[t] for t in spec.msd_tags}, **{g: GTZAN_NAMES.get(g, g) for g in spec.gtzan_genres}}
        heads["genres"] = {
            "labels": list(spec.labels), "task": "multilabel", "output": outputs["genres"],
            "thresholds": {t: round(v, 4) for t, v in (genres_thresholds or {}).items()}, "tag_names": names,
        }  # fmt: skip
    return heads


def int8_parity(
    prepared: Prepared, config: TransferConfig, fold: FoldResult, scratch: Path, workers: int, download: bool
) -> None:
    """Convert the fold's backbone + head to int8 (calibrated on its training windows only) and score its test
    clips through the tagger's :class:`~tagger.model.Classifier`; fills ``fold.int8_*``."""
    from tagger.model import Classifier, ModelCard
    from tagger.train.card import write_card

    genres = prepared.dataset.genres
    model = build_export_model(friendly_backbone(download), fold.head, genres, config.msd_tags, None)
    calibration = clip_windows(prepared, fold.train, training=True, offset=config.offset_windows)
    path = scratch / "fold.tflite"
    outputs = convert_int8(model, calibration, path, config)
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


# ---------------------------------------------------------------------------------------------- thresholds


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
        ids, means = _track_probabilities(fold.probabilities, fold.test_table.tracks)
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
        ids, means = _track_probabilities(m, fold.test_table.tracks)
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


def _track_probabilities(values: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from tagger.train.musicnn.softmax_head import track_probabilities

    return track_probabilities(values, tracks)


def vocabulary_evidence(
    prepared: Prepared, config: TransferConfig, cv_folds: Sequence[FoldResult], thresholds: Thresholds
) -> dict[str, Any]:
    """How each vocabulary tags the sample's clips at ``top_k=1`` through :func:`tagger.aggregate.aggregate`.

    Uses the CV folds' held-out GTZAN probabilities and the shipped thresholds. A clip counts as right
    when the written genre names its GTZAN genre (``rock``/``classic rock`` for rock, ``metal``/``heavy
    metal`` for metal, the genre itself otherwise); "other" when it writes another label, "nothing" when
    no label passes its threshold.
    """
    from tagger.aggregate import aggregate
    from tagger.model import Head

    genres = prepared.dataset.genres
    labels = prepared.labels
    spec = _spec(config, thresholds)
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


def _spec(config: TransferConfig, thresholds: Thresholds) -> VocabularySpec:
    return VocabularySpec(
        config.msd_tags, tuple(thresholds.msd[t] for t in config.msd_tags),
        config.vocabulary_gtzan, tuple(thresholds.gtzan[g] for g in config.vocabulary_gtzan),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- zero-shot


def zero_shot_counts(taggrams: dict[int, np.ndarray], prepared: Prepared) -> dict[str, Any]:
    """MSD top-3 genre-tag agreement per mapped GTZAN genre, from per-window taggrams of each clip."""
    from tagger.train.musicnn.zero_shot import ClipResult, ZeroShotReport

    columns = np.array([MSD_LABELS.index(t) for t in GENRE_TAGS])
    report = ZeroShotReport(top_k=3)
    for index, taggram in sorted(taggrams.items()):
        clip = prepared.dataset.clips[index]
        scores = taggram.mean(axis=0)
        order = np.argsort(-scores[columns], kind="stable")
        report.results.append(ClipResult(clip.genre, clip.path, scores, tuple(GENRE_TAGS[i] for i in order)))
    hit, total = report.total()
    return {"per_genre": {g: list(v) for g, v in report.hits().items()}, "total": [hit, total]}


# ---------------------------------------------------------------------------------------------- run


def run(options: Options) -> dict[str, Any]:
    """Evaluate every protocol, fit and convert the shipped model, write card + report; return the card."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # many-threaded BLAS on a busy 2-core box thrashes
        return _run(options)


def _run(options: Options) -> dict[str, Any]:
    config = options.config
    started = time.perf_counter()
    prepared = prepare(options)
    dataset = prepared.dataset
    genres = dataset.genres
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    log = options.log

    # 1. Random repeated stratified k-fold (the paper trainer's folds), with the window-budget curve.
    splits = list(repeated_kfold(dataset, config.folds, config.repeats, seed=config.seed))
    cv_folds: list[FoldResult] = []
    with tempfile.TemporaryDirectory(prefix="transfer-", dir=out) as scratch_name:
        scratch = Path(scratch_name)
        for n, split in enumerate(splits, start=1):
            fold = fit_fold(prepared, config, "cv", f"r{split.repeat}f{split.fold}",
                            split.train + split.valid, split.test, budgets=True)  # fmt: skip
            fold.repeat = split.repeat
            if split.repeat is not None and split.repeat < config.parity_repeats:
                int8_parity(prepared, config, fold, scratch, options.workers, options.download)
            log(f"cv fold {n}/{len(splits)}: {fold.selection.feature_set} C={fold.selection.c:g}, "
                f"macro-F1 {fold.scores.macro['f1']:.3f}"
                + (f", int8 {fold.int8_scores.macro['f1']:.3f} agreement {fold.int8_agreement:.3f}"
                   if fold.int8_scores else ""))  # fmt: skip
            cv_folds.append(fold)

        # 2. Artist-aware: the fault-filtered hold-out, and the three lists in turn.
        ff_split = fault_filtered(dataset, options.lists_dir, valid_from="train", seed=config.seed)
        ff = fit_fold(prepared, config, "fault-filtered", "fault-filtered", ff_split.train + ff_split.valid,
                      ff_split.test, budgets=True)  # fmt: skip
        int8_parity(prepared, config, ff, scratch, options.workers, options.download)
        assert ff.int8_scores is not None  # int8_parity just set it
        log(
            f"fault-filtered hold-out: {len(ff.train)} train, {len(ff.test)} test clips, macro-F1 "
            f"{ff.scores.macro['f1']:.3f}, int8 {ff.int8_scores.macro['f1']:.3f}"
        )
        lists = [fit_fold(prepared, config, "lists-3fold", f"test={part}", train, test)
                 for part, train, test in lists_3fold(dataset, options.lists_dir)]  # fmt: skip
        for fold in lists:
            log(
                f"lists-3fold {fold.name}: {len(fold.test)} scored, excluded {fold.excluded}, "
                f"macro-F1 {fold.scores.macro['f1']:.3f}"
            )

    # 3. Thresholds and the vocabulary evidence.
    thresholds = choose_thresholds(prepared, config, cv_folds, [(s.train + s.valid, s.test) for s in splits])
    evidence = vocabulary_evidence(prepared, config, cv_folds, thresholds)
    log(
        "vocabularies at top-1 on held-out folds: "
        + ", ".join(f"{k} {v['right_rate']:.3f} right, {v['total']['nothing']} nothing" for k, v in evidence.items())
    )

    # 4. The shipped model: head on every clip, int8 with every head, card.
    shipped = _ship(options, prepared, thresholds, log)

    metrics = _metrics(config, genres, cv_folds, ff, lists)
    card = _card(options, prepared, shipped, thresholds, evidence, metrics, cv_folds, ff,
                 time.perf_counter() - started)  # fmt: skip
    from tagger.train.card import write_card
    from tagger.train.musicnn.transfer_markdown import write_report

    write_card(card, out / f"{options.name}.json")
    write_report(out, card, genres, options.compare)
    if options.ship is not None:
        options.ship.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / f"{options.name}.tflite", options.ship / f"{options.name}.tflite")
        write_card(card, options.ship / f"{options.name}.json")
        log(f"shipped {options.ship / (options.name + '.tflite')} and its card")
    log(f"wrote {out / (options.name + '.tflite')}, its card, report.md ({time.perf_counter() - started:.0f} s)")
    return card


@dataclass
class Shipped:
    head: LinearHead
    selection: Selection
    outputs: dict[str, str]
    float_outputs: dict[str, str]
    int8_bytes: int
    float_bytes: int
    zero_shot: dict[str, Any]
    parity: dict[str, Any]
    speed: dict[str, Any]


def _ship(options: Options, prepared: Prepared, thresholds: Thresholds, log: Callable[[str], None]) -> Shipped:
    from tagger.model import Classifier, ModelCard
    from tagger.train.card import write_card

    config = options.config
    genres = prepared.dataset.genres
    everything = sorted(prepared.outputs)
    table = window_table(prepared, everything, training=True, offset=config.offset_windows)
    selection = select(table, len(genres), config.c_grid, config.feature_sets, config.inner_folds, config.seed)
    head = fit_head(table, selection.feature_set, selection.c, len(genres), config.seed)
    log(f"shipped head: {selection.feature_set}, C={selection.c:g} (inner CV on all {len(everything)} clips)")
    spec = _spec(config, thresholds)
    model = build_export_model(friendly_backbone(options.download), head, genres, config.msd_tags, spec)
    int8_path = options.out / f"{options.name}.tflite"
    float_path = options.out / f"{options.name}.float.tflite"
    calibration = clip_windows(prepared, everything, training=True, offset=config.offset_windows)
    outputs = convert_int8(model, calibration, int8_path, config)
    float_outputs = convert_float(model, float_path)

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
        int8_taggram = _taggram(scratch / int8_path.name, windows)
        long_track = options.speed_file
        if long_track is None:
            from tagger.train.speed import make_long_track

            long_track = make_long_track([prepared.dataset.clips[i].path for i in everything[::7]],
                                         scratch / "long-track.mp3")  # fmt: skip
        speed = measure_speed(scratch / "draft.json", windows[:64], long_track, config, log)
        # The same graph in float32, for comparison (not shipped): its own output tensor names.
        float_draft = {**draft, "model_file": float_path.name, "embedding_output": float_outputs["embedding"],
                       "heads": heads_for_card(genres, float_outputs, config.msd_tags, thresholds.msd, spec,
                                               thresholds.genres)}  # fmt: skip
        write_card(float_draft, scratch / "float.json")
        (scratch / float_path.name).write_bytes(float_path.read_bytes())
        from tagger.train.speed import time_model

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


def _taggram(path: Path, windows: np.ndarray) -> np.ndarray:
    from tagger.train.musicnn.zero_shot import TFLitePredictor

    predictor = TFLitePredictor(path, output="taggram")
    return np.concatenate([predictor(windows[s : s + 64]) for s in range(0, len(windows), 64)])


def measure_speed(
    card_path: Path, windows: np.ndarray, long_track: Path | None, config: TransferConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """Model milliseconds per window (the shipped file, batch 8 as the tagger runs it, 1 and 2 threads), and with a
    long track: its full decode time and the tagger's end-to-end time per window budget."""
    from tagger.train.speed import time_budgets, time_model

    speed: dict[str, Any] = {"model_ms_per_window": {str(t): time_model(card_path, windows, t) for t in (1, 2)}}
    if long_track is not None:
        speed["long_track"] = time_budgets(card_path, long_track, (*config.budgets, None))
    log(f"speed: {speed['model_ms_per_window']}")
    return speed


def _metrics(
    config: TransferConfig, genres: tuple[str, ...], cv_folds: list[FoldResult], ff: FoldResult,
    lists: list[FoldResult],
) -> dict[str, Any]:  # fmt: skip
    cv_float = summarise([f.scores for f in cv_folds], genres)
    parity_folds = [f for f in cv_folds if f.int8_scores is not None]
    int8_summary = summarise([f.int8_scores for f in parity_folds if f.int8_scores], genres)
    float_on_parity = summarise([f.scores for f in parity_folds], genres)
    budgets = {
        key: summarise([f.budgets[key] for f in cv_folds], genres) for key in [*(str(b) for b in config.budgets), "all"]
    }
    pooled = np.sum([f.scores.confusion for f in lists], axis=0)
    from tagger.train.evaluate import from_confusion

    lists_per_genre, lists_macro = from_confusion(pooled, genres)
    return {
        "cv": {
            "protocol": f"repeated stratified {config.folds}-fold CV x {config.repeats} repeats (random, so artists "
            f"leak between train and test; the paper CNN trainer's folds, seed {config.seed})",
            "float": cv_float,
            "per_fold": [f.row() for f in cv_folds],
        },
        "cv_int8": {
            "protocol": f"the first {config.parity_repeats} repeat(s) of the CV folds: each fold's head + backbone "
            "converted to int8 (calibrated on that fold's training windows) and run through tagger.model.Classifier "
            "on its held-out clips",
            "float": float_on_parity,
            "int8": int8_summary,
            "track_agreement": {
                "mean": float(np.mean([f.int8_agreement for f in parity_folds])),
                "min": float(np.min([f.int8_agreement for f in parity_folds])),
            },
            "int8_bytes": max(f.int8_bytes or 0 for f in parity_folds),
        },
        "fault_filtered": {
            "protocol": "fault-filtered hold-out (artist-disjoint lists): trained on the sample's clips in the "
            "train+valid lists, scored on those in the test list",
            "train_clips": len(ff.train),
            "test_clips": len(ff.test),
            "test_per_genre": {g: int(s["support"]) for g, s in ff.scores.per_genre.items() if s["support"]},
            "float": ff.scores.to_dict(),
            "int8": ff.int8_scores.to_dict() if ff.int8_scores else None,
            "track_agreement": ff.int8_agreement,
            "selection": ff.selection.to_dict(),
        },
        "lists_3fold": {
            "protocol": "each fault-filtered list (train / valid / test) scored by a head trained on the other two "
            "(artist-disjoint); test clips of a genre absent from the other two lists are excluded and counted",
            "folds": [f.row() for f in lists],
            "pooled": {
                "per_genre": lists_per_genre,
                "macro": lists_macro,
                "confusion": pooled.tolist(),
                "tracks": int(pooled.sum()),
            },
        },
        "window_budget": {
            "protocol": "CV folds (all repeats); each held-out clip classified from the windows the tagger picks "
            "under max_windows=N (spread), or all its windows",
            "macro_f1": {k: v["macro"]["f1"] for k, v in budgets.items()},
            "track_accuracy": {k: v["track_accuracy"] for k, v in budgets.items()},
        },
    }


def _card(
    options: Options,
    prepared: Prepared,
    shipped: Shipped,
    thresholds: Thresholds,
    evidence: dict[str, Any],
    metrics: dict[str, Any],
    cv_folds: list[FoldResult],
    ff: FoldResult,
    seconds: float,
) -> dict[str, Any]:
    from tagger.model import CARD_SCHEMA_VERSION

    config = options.config
    genres = prepared.dataset.genres
    spec = _spec(config, thresholds)
    cv_int8 = metrics["cv_int8"]
    f1_float = cv_int8["float"]["macro"]["f1"]["mean"]
    f1_int8 = cv_int8["int8"]["macro"]["f1"]["mean"]
    pooled_float = cv_int8["float"]["pooled"]["macro"]["f1"]
    pooled_int8 = cv_int8["int8"]["pooled"]["macro"]["f1"]
    parity = {
        "evaluated_on": cv_int8["protocol"],
        "macro_f1_float": f1_float,
        "macro_f1_int8": f1_int8,
        "macro_f1_difference_points": abs(f1_float - f1_int8) * 100,
        "pooled_macro_f1_float": pooled_float,
        "pooled_macro_f1_int8": pooled_int8,
        "pooled_macro_f1_difference_points": abs(pooled_float - pooled_int8) * 100,
        "track_agreement": cv_int8["track_agreement"]["mean"],
        "track_agreement_min_fold": cv_int8["track_agreement"]["min"],
        "fault_filtered_track_agreement": ff.int8_agreement,
        "int8_bytes": shipped.int8_bytes,
        "float_bytes": shipped.float_bytes,
        "zero_shot_top3": shipped.zero_shot,
        "targets": {"macro_f1_points": 1.0, "track_agreement": 0.98, "max_bytes": 4 * 1024 * 1024,
                    "zero_shot_top3_int8": 60},
        "shipped_model": shipped.parity,
    }  # fmt: skip
    parity["met"] = bool(  # rounded: a difference of exactly one point is within it
        round(parity["macro_f1_difference_points"], 6) <= 1.0 and parity["track_agreement"] >= 0.98
        and shipped.int8_bytes < 4 * 1024 * 1024 and shipped.zero_shot["int8"]["total"][0] >= 60
    )  # fmt: skip
    return plain(
        {
            "schema_version": CARD_SCHEMA_VERSION,
            "name": options.name,
            "version": options.version,
            "model_file": f"{options.name}.tflite",
            "features": config.features.to_dict(),
            "heads": heads_for_card(genres, shipped.outputs, config.msd_tags, thresholds.msd, spec, thresholds.genres),
            "default_head": config.default_head,
            "input_layout": "frames_mels",
            "embedding_output": shipped.outputs["embedding"],
            "taggram_output": shipped.outputs["taggram"],
            "max_windows": config.max_windows,
            "quantization": config.quantization,
            "quantization_detail": QUANTIZATION_DETAIL[config.quantization],
            "float_model_file": f"{options.name}.float.tflite",
            "float_outputs": shipped.float_outputs,
            "configuration": config.name,
            "configuration_detail": config.to_dict(),
            "architecture": {
                "backbone": "MSD_musicnn (Pons & Serra 2019), frozen, Keras port rearranged by fast_layout (equal "
                "in float); 187x96 log10(1+10000 mel) windows at 16 kHz (3 s)",
                "head": f"standardise + multinomial logistic regression on {shipped.selection.feature_set} "
                f"(C={shipped.selection.c:g}, class-balanced), folded into Dense layers; softmax output 'gtzan'",
                "outputs": {
                    "gtzan": "softmax over the GTZAN genres",
                    "msd": f"sigmoid scores of the {len(config.msd_tags)} genre-like MSD tags "
                    "(a gather of the taggram)",
                    "genres": "margin scores: sigmoid(tag logit - logit(raw threshold)) for the MSD tags, "
                    "sigmoid(log p - log(raw threshold)) for classical/disco/reggae from the gtzan head; 0.5 at the "
                    "raw threshold, so labels from both sources rank by how far they clear their own threshold",
                    "taggram": "all 50 MSD tag scores",
                    "embedding": "200-d penultimate layer of the backbone (stored per track, for `tagger learn`)",
                },
                "selection": shipped.selection.to_dict(),
                "fine_tuning": "none: see tagger/train/musicnn/transfer.py (too little data, CPU hours, and the int8 "
                "layout)",
            },
            "seed": config.seed,
            "split": {
                "protocols": ["cv", "fault-filtered", "lists-3fold"],
                "data_root": str(prepared.dataset.root),
                "clips_found": len(prepared.dataset.clips),
                "per_genre": prepared.dataset.counts(),
                "unreadable": sorted(prepared.failed),
                "fault_filtered_counts": {"train+valid": len(ff.train), "test": len(ff.test)},
                "shipped_model": f"head trained on all {len(prepared.outputs)} clips; metrics from the protocols",
            },
            "metrics": metrics,
            "thresholds": {
                "method": "Per label, the cut-off on the track score (mean of window scores) maximising F1 of 'label "
                "written' vs 'clip of the mapped GTZAN genre' on the sample (halfway between neighbouring scores, the "
                "median of equally good cut-offs): MSD tags on their raw scores (rock, classic rock -> rock; metal, "
                f"heavy metal -> metal; blues, jazz, pop, Hip-Hop, country -> their genre), kept only if that F1 is "
                f">= {MIN_TRUSTED_F1}; classical/disco/reggae on the CV folds' held-out gtzan probabilities. Unmapped "
                f"MSD tags (and classic rock, whose best F1 on GTZAN rock is ~0.1) get {UNMAPPED_THRESHOLD}: the "
                "network's own 'more likely than not', above every trusted mapped cut-off but jazz's. The genres "
                "vocabulary's margin scores are 0.5 at each raw threshold; its trusted labels' cut-offs are re-chosen "
                "on the margin scores the same way, the others stay 0.5.",
                "evidence": thresholds.evidence,
                "vocabularies_top1_on_held_out_folds": evidence,
            },
            "parity": parity,
            "speed": shipped.speed,
            "training": {"seconds": round(seconds, 1), "backbone_outputs_seconds": round(prepared.seconds, 1)},
            "data_fingerprint": prepared.dataset.fingerprint(),
            "backbone_fingerprint": prepared.fingerprint,
            "trainer_version": TRAINER_VERSION,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "licence": LICENCE,
            "reproduce": f"tagger-train transfer --data {options.data} --out {options.out}"
            + (f" --ship {options.ship}" if options.ship else ""),
        }
    )


def plain(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with numpy scalars and arrays as plain JSON types (as a reader of the file sees it)."""

    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    return json.loads(json.dumps(card, default=default))
