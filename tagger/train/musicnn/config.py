"""The ``musicnn-transfer`` configuration, what a run was asked to do, and the clips' backbone outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger.features import FeatureParams
from tagger.train.cache import FeatureCache
from tagger.train.datasets import Dataset
from tagger.train.musicnn.backbone import SPREAD_BUDGETS, ClipOutputs
from tagger.train.musicnn.port import MUSICNN_FEATURES
from tagger.train.musicnn.zero_shot import GENRE_TAGS
from tagger.train.splits import LISTS_DIR

GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip


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
