"""Named, reproducible training configurations (features, network, optimisation, augmentation).

A configuration fixes every choice, including those the paper is silent on, so that
``tagger-train run --config NAME`` with the same data and seed reproduces a model; the
card records the whole configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from tagger.features import FeatureParams


@dataclass(frozen=True)
class Augmentation:
    """Light, label-preserving changes to training windows (in the normalised log-mel domain)."""

    gain_db: float = 0.0  # uniform level change in ±gain_db (a dB log-mel shifts by that many dB)
    time_masks: int = 0  # SpecAugment-style masks set to the window's mean
    time_mask_frames: int = 0  # maximum width of one time mask
    freq_masks: int = 0
    freq_mask_bands: int = 0

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.time_masks or self.freq_masks)


@dataclass(frozen=True)
class Network:
    """Three convolution + max-pool blocks over time (mel bands as channels), pooled, dense softmax."""

    filters: tuple[int, int, int] = (64, 128, 128)
    kernel: int = 4  # frames per convolution
    pools: tuple[int, int, int] = (4, 2, 2)  # max-pool sizes (frames) after each convolution
    batch_norm: bool = False
    dropout: float = 0.0  # before the softmax layer
    global_pool: str = "mean+max"  # over the remaining frames; the concatenation is the embedding


@dataclass(frozen=True)
class Config:
    """Everything one training run depends on, besides the data and the split."""

    name: str
    description: str
    features: FeatureParams
    network: Network
    head: str = "gtzan"
    train_hop_frames: int = 599  # hop between training windows (evaluation uses features.window_hop_frames)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 15  # early stopping on validation loss, best weights restored
    min_epochs: int = 5  # with no validation: never train fewer than this
    class_weight: bool = True  # weight windows by inverse genre frequency (a no-op on balanced GTZAN)
    augmentation: Augmentation = field(default_factory=Augmentation)
    valid_fraction: float = 0.15  # of the training clips, stratified, for early stopping
    max_windows: int | None = None  # the card's default window budget per track for the tagger
    seed: int = 0

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = self.features.to_dict()
        return data


# 22050 Hz, n_fft 2048 (93 ms), hop 512 (23 ms): 599 frames = 14.0 s. The paper gives 599 x 128 at
# 22050 Hz but not the STFT; hop 512 keeps a window inside the 15-20 s clips of the GTZAN sample
# (hop 1024 would make it 27.8 s: mostly padding on all but ten of its clips).
PAPER_FEATURES = FeatureParams(
    sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, window_frames=599, window_hop_frames=599, log="db"
)

CONFIGS: dict[str, Config] = {
    "paper": Config(
        name="paper",
        description=(
            "The paper's network: 599x128 log-mel input at 22050 Hz, three conv+max-pool layers, dense softmax; "
            "one non-overlapping window per 14.0 s of audio for training and evaluation, no regularisation."
        ),
        features=PAPER_FEATURES,
        network=Network(filters=(64, 128, 128), kernel=4, pools=(4, 2, 2)),
        train_hop_frames=599,
        max_epochs=100,
        patience=15,
        max_windows=8,
    ),
    "paper-short": Config(
        name="paper-short",
        description=(
            "paper, improved for small data: 128-frame (3 s) windows, training hop 32 frames, evaluation hop 64 "
            "with track-level voting (mean of window probabilities), batch norm, dropout 0.3, gain and "
            "time/frequency-mask augmentation."
        ),
        features=dataclasses.replace(PAPER_FEATURES, window_frames=128, window_hop_frames=64),
        network=Network(filters=(64, 128, 128), kernel=4, pools=(2, 2, 2), batch_norm=True, dropout=0.3),
        train_hop_frames=32,
        max_epochs=60,
        patience=10,
        augmentation=Augmentation(gain_db=6.0, time_masks=1, time_mask_frames=16, freq_masks=2, freq_mask_bands=12),
        max_windows=24,
    ),
    "tiny": Config(
        name="tiny",
        description="A small, fast network for the synthetic genres (test fixture and CI): 16 kHz, 64-frame windows.",
        features=FeatureParams(
            sample_rate=16000, n_fft=512, hop_length=256, n_mels=128, window_frames=64, window_hop_frames=64, log="db"
        ),
        network=Network(filters=(8, 16, 16), kernel=4, pools=(2, 2, 2), batch_norm=True, dropout=0.1),
        head="synthetic",
        train_hop_frames=16,
        batch_size=32,
        learning_rate=3e-3,
        max_epochs=40,
        patience=8,
        augmentation=Augmentation(gain_db=6.0),
    ),
}


def get(name: str) -> Config:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}") from None
