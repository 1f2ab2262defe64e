"""Fit a configuration's network on training windows, early-stopping on validation windows.

Reproducible: the global seeds are set from the configuration's seed, TensorFlow's ops are
made deterministic, and shuffling/augmentation draw from a generator keyed by
(seed, epoch, batch), so the same data, split and seed give the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.train.paper import cnn
from tagger.train.paper.configs import Augmentation, Config
from tagger.train.windows import WindowSet


@dataclass
class TrainResult:
    """The fitted models (training and export views of the same weights) and how training went."""

    train_model: Any
    export_model: Any
    epochs_run: int
    best_epoch: int  # epoch whose weights were kept (1-based)
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weight per class (mean 1 over the windows); 0 for a class with no windows."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


def augment(batch: np.ndarray, augmentation: Augmentation, std: float, rng: np.random.Generator) -> np.ndarray:
    """Apply ``augmentation`` in place to normalised dB log-mel windows ``(n, frames, mels)``."""
    n, frames, mels = batch.shape
    if augmentation.gain_db:
        batch += (rng.uniform(-augmentation.gain_db, augmentation.gain_db, size=(n, 1, 1)) / std).astype(np.float32)
    for i in range(n):
        for _ in range(augmentation.time_masks):
            width = int(rng.integers(0, augmentation.time_mask_frames + 1))
            start = int(rng.integers(0, max(1, frames - width)))
            batch[i, start : start + width, :] = 0.0  # the normalised mean
        for _ in range(augmentation.freq_masks):
            width = int(rng.integers(0, augmentation.freq_mask_bands + 1))
            start = int(rng.integers(0, max(1, mels - width)))
            batch[i, :, start : start + width] = 0.0
    return batch


def _batches(config: Config, data: WindowSet, weights: np.ndarray, std: float) -> Any:
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    class Batches(keras.utils.PyDataset):  # type: ignore[misc]
        """Shuffled, augmented, class-weighted batches; randomness keyed by (seed, epoch, batch)."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = self._order()

        def _order(self) -> np.ndarray:
            return np.random.default_rng([config.seed, self.epoch]).permutation(len(data))

        def __len__(self) -> int:
            return math.ceil(len(data) / config.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            chosen = self.order[index * config.batch_size : (index + 1) * config.batch_size]
            x = data.windows[chosen].copy()
            if config.augmentation.active:
                rng = np.random.default_rng([config.seed, self.epoch, index, 1])
                augment(x, config.augmentation, std, rng)
            y = data.labels[chosen]
            return x, y, weights[y].astype(np.float32)

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

    return Batches()


def train(
    config: Config,
    train_set: WindowSet,
    valid_set: WindowSet | None,
    n_classes: int,
    epochs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train from scratch. With a validation set: up to ``max_epochs``, early stopping on its loss,
    best weights restored. Without: exactly ``epochs`` (e.g. the median best epoch of CV folds).

    ``config.features`` must carry the normalisation measured on the training clips (the gain
    augmentation converts dB to normalised units with its ``std``).
    """
    import keras  # deferred: TensorFlow loads only when a model is built or converted
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    if len(train_set) == 0:
        raise ValueError("no training windows")
    keras.backend.clear_session()  # one model at a time: CV folds must not accumulate graphs
    tf.get_logger().setLevel("ERROR")  # per-fold predict retracing warnings are expected
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    train_model, export_model = cnn.build(config, n_classes)
    train_model.compile(
        optimizer=keras.optimizers.get(
            {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
        ),
        loss="sparse_categorical_crossentropy",
        weighted_metrics=["accuracy"],
    )
    weights = class_weights(train_set.labels, n_classes) if config.class_weight else np.ones(n_classes)
    std = float(np.mean(config.features.std)) if config.augmentation.gain_db else 1.0
    callbacks: list[Any] = []
    validation = None
    if valid_set is not None and len(valid_set):
        validation = (valid_set.windows, valid_set.labels, weights[valid_set.labels].astype(np.float32))
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
        )
        total_epochs = epochs or config.max_epochs
    else:
        total_epochs = max(epochs or config.max_epochs, config.min_epochs)
    if log is not None:
        callbacks.append(_epoch_logger(log, total_epochs))
    started = time.perf_counter()
    history = train_model.fit(
        _batches(config, train_set, weights, std),
        validation_data=validation,
        epochs=total_epochs,
        callbacks=callbacks,
        verbose=0,
    ).history
    seconds = time.perf_counter() - started
    epochs_run = len(history["loss"])
    best = int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else epochs_run
    return TrainResult(
        train_model, export_model, epochs_run, best, seconds,
        {k: [float(v) for v in values] for k, values in history.items()},
    )  # fmt: skip


def _epoch_logger(log: Callable[[str], None], total: int) -> Any:
    """A Keras callback writing one line every ten epochs through ``log``."""
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if epoch == 0 or (epoch + 1) % 10 == 0:
                keys = ("loss", "accuracy", "val_loss", "val_accuracy")
                shown = " ".join(f"{k}={v:.3f}" for k, v in (logs or {}).items() if k in keys)
                log(f"epoch {epoch + 1}/{total} {shown}")

    return EpochLog()
