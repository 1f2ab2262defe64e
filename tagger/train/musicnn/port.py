"""Keras 3 port of musicnn's MSD_musicnn (Pons & Serra, 2019), loadable with the authors' weights.

Written from the architecture of ``musicnn`` 0.1.0 (ISC licence), layer for layer, so the
TF1 checkpoint's variables map one to one (see :data:`CHECKPOINT_LAYERS`):

* front-end: batch norm of the log-mel input, then *timbral* filters spanning 7 frames by
  40% / 70% of the mel axis (valid in frequency, zero-padded by 3 in time) and *temporal*
  filters spanning 128 / 64 / 32 frames by one band ("same" padding); each is ReLU, batch
  norm, then max-pooled over the whole frequency axis, giving 204+204+51+51+51 = 561 features
  per frame;
* mid-end: three 7-frame convolutions (64 filters, ReLU, batch norm; the original writes them
  as 2-D convolutions over the full feature axis, which are exactly 1-D convolutions), the
  second and third with residual connections; the front-end output and all three are
  concatenated (561 + 3·64 = 753);
* back-end: max and mean over time, *interleaved* as the original's flatten of a
  ``(753, 2)`` tensor leaves them ([max₀, mean₀, max₁, mean₁, ...]), batch norm, dropout,
  a 200-unit ReLU dense layer ("penultimate"), batch norm, dropout, 50 logits, sigmoid.

Outputs: ``taggram`` (50 sigmoid tag scores) and ``embedding`` (the 200-d penultimate layer
after its ReLU and batch norm — what musicnn's extractor returns as ``penultimate``).

:mod:`tagger.train.musicnn.layouts` rebuilds the loaded port as equivalent float models laid out for
TFLite: the shipped layout, and one for full-integer int8 (see there for why the original layout quantizes badly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.features import FeatureParams
from tagger.train.musicnn.pretrained import locate_checkpoint, open_checkpoint

# musicnn's own input: 16 kHz, 512-point FFT, hop 256, 96 slaney mel bands of power,
# log10(1 + 10000·x), windows of 187 frames (3 s), no normalisation.
MUSICNN_FEATURES = FeatureParams(
    sample_rate=16000,
    n_fft=512,
    hop_length=256,
    n_mels=96,
    window_frames=187,
    window_hop_frames=187,
    log="log10_1p",
    log_gain=10000.0,
)

N_FRAMES = 187
N_MELS = 96
N_TAGS = 50
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default, as trained

# (Keras layer, checkpoint variable scope): the explicit one-to-one mapping of layers.
# Conv/dense layers carry kernel + bias, batch norms gamma/beta/moving_mean/moving_variance;
# the variable names inside each scope are the same on both sides.
CHECKPOINT_LAYERS: tuple[tuple[str, str], ...] = (
    ("input_bn", "batch_normalization"),
    ("timbral_74_conv", "conv2d"),
    ("timbral_74_bn", "batch_normalization_1"),
    ("timbral_77_conv", "conv2d_1"),
    ("timbral_77_bn", "batch_normalization_2"),
    ("temporal_128_conv", "conv2d_2"),
    ("temporal_128_bn", "batch_normalization_3"),
    ("temporal_64_conv", "conv2d_3"),
    ("temporal_64_bn", "batch_normalization_4"),
    ("temporal_32_conv", "conv2d_4"),
    ("temporal_32_bn", "batch_normalization_5"),
    ("midend_1_conv", "conv2d_5"),
    ("midend_1_bn", "batch_normalization_6"),
    ("midend_2_conv", "conv2d_6"),
    ("midend_2_bn", "batch_normalization_7"),
    ("midend_3_conv", "conv2d_7"),
    ("midend_3_bn", "batch_normalization_8"),
    ("pool_bn", "batch_normalization_9"),
    ("penultimate", "dense"),
    ("embedding", "batch_normalization_10"),
    ("logits", "dense_1"),
)

# Checkpoint variables that are training bookkeeping, not model weights.
_OPTIMIZER_VARIABLE = re.compile(r"(/Adam(_\d+)?$)|(^beta[12]_power$)|(^global_step$)")


def _keras() -> Any:
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    return keras


def build_musicnn(
    n_frames: int | None = N_FRAMES,
    n_mels: int = N_MELS,
    num_classes: int = N_TAGS,
    frontend_factor: float = 1.6,
    midend_filters: int = 64,
    backend_units: int = 200,
    dropout: float = 0.5,
    name: str = "msd_musicnn",
) -> Any:
    """The MSD_musicnn network: input ``logmel`` ``(batch, n_frames, n_mels)``, outputs taggram + embedding.

    ``n_frames=None`` accepts any window length (musicnn is fully convolutional up to the
    temporal pooling); the checkpoint was trained on 187 frames.
    """
    keras = _keras()
    layers = keras.layers

    def bn(layer_name: str) -> Any:
        return layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=0.99, name=layer_name)

    def frontend_block(x: Any, filters: int, kernel: tuple[int, int], padding: str, tag: str) -> Any:
        # conv (ReLU) -> batch norm -> max over all remaining frequency bins -> (batch, frames, filters)
        y = layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=f"{tag}_conv")(x)
        y = bn(f"{tag}_bn")(y)
        y = layers.MaxPooling2D(pool_size=(1, int(y.shape[2])), name=f"{tag}_pool")(y)
        return layers.Reshape((-1, filters), name=f"{tag}_squeeze")(y)

    def midend_block(x: Any, tag: str) -> Any:
        # The original pads 3 frames each side and convolves valid: a 'same' 7-frame conv.
        y = layers.ZeroPadding1D(3, name=f"{tag}_pad")(x)
        y = layers.Conv1D(midend_filters, 7, padding="valid", activation="relu", name=f"{tag}_conv")(y)
        return bn(f"{tag}_bn")(y)

    logmel = keras.Input(shape=(n_frames, n_mels), dtype="float32", name="logmel")
    x = layers.Reshape((-1, n_mels, 1), name="expand")(logmel)
    x = bn("input_bn")(x)

    # Front-end. Timbral: time padded by 3 each side, valid in frequency.
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    timbral_filters = int(frontend_factor * 128)
    temporal_filters = int(frontend_factor * 32)
    features = [
        frontend_block(padded, timbral_filters, (7, int(0.4 * n_mels)), "valid", "timbral_74"),
        frontend_block(padded, timbral_filters, (7, int(0.7 * n_mels)), "valid", "timbral_77"),
        frontend_block(x, temporal_filters, (128, 1), "same", "temporal_128"),
        frontend_block(x, temporal_filters, (64, 1), "same", "temporal_64"),
        frontend_block(x, temporal_filters, (32, 1), "same", "temporal_32"),
    ]
    frontend = layers.Concatenate(axis=-1, name="frontend")(features)

    # Mid-end: residual 1-D convolutions, densely concatenated with the front-end.
    cnn1 = midend_block(frontend, "midend_1")
    cnn2 = layers.Add(name="midend_2_residual")([midend_block(cnn1, "midend_2"), cnn1])
    cnn3 = layers.Add(name="midend_3_residual")([midend_block(cnn2, "midend_3"), cnn2])
    midend = layers.Concatenate(axis=-1, name="midend")([frontend, cnn1, cnn2, cnn3])
    channels = int(midend.shape[-1])

    # Back-end: temporal max and mean pooling, interleaved per channel as in the original.
    max_pool = layers.Reshape((channels, 1), name="max_pool")(layers.GlobalMaxPooling1D(name="time_max")(midend))
    mean_pool = layers.Reshape((channels, 1), name="mean_pool")(layers.GlobalAveragePooling1D(name="time_mean")(midend))
    pooled = layers.Flatten(name="pool_flatten")(layers.Concatenate(axis=-1, name="pool")([max_pool, mean_pool]))
    pooled = bn("pool_bn")(pooled)
    pooled = layers.Dropout(dropout, name="pool_dropout")(pooled)
    dense = layers.Dense(backend_units, activation="relu", name="penultimate")(pooled)
    embedding = bn("embedding")(dense)
    hidden = layers.Dropout(dropout, name="embedding_dropout")(embedding)
    logits = layers.Dense(num_classes, name="logits")(hidden)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(inputs=logmel, outputs={"taggram": taggram, "embedding": embedding}, name=name)


@dataclass
class LoadReport:
    """What :func:`load_checkpoint_weights` assigned and what it skipped."""

    assigned: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)  # keras, ckpt, shape
    ignored: list[str] = field(default_factory=list)  # optimizer / bookkeeping variables

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for _, _, shape in self.assigned)


def checkpoint_mapping(model: Any) -> list[tuple[Any, str]]:
    """Every weight of ``model`` paired with its checkpoint variable name, from :data:`CHECKPOINT_LAYERS`."""
    pairs: list[tuple[Any, str]] = []
    for layer_name, scope in CHECKPOINT_LAYERS:
        layer = model.get_layer(layer_name)
        for weight in layer.weights:
            leaf = weight.path.rsplit("/", 1)[-1]  # kernel, bias, gamma, beta, moving_mean, moving_variance
            pairs.append((weight, f"{scope}/{leaf}"))
    return pairs


def _fit(value: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The checkpoint value in the Keras weight's shape.

    Only one reshape is allowed: a mid-end kernel stored as a 2-D conv ``(7, C, 1, F)`` becomes
    the equivalent 1-D conv kernel ``(7, C, F)``. Anything else must match exactly.
    """
    if value.shape == shape:
        return value
    if value.ndim == 4 and value.shape[2] == 1 and (value.shape[0], value.shape[1], value.shape[3]) == shape:
        return value[:, :, 0, :]
    raise ValueError(f"checkpoint variable {name} has shape {value.shape}, the port expects {shape}")


def load_checkpoint_weights(model: Any, prefix: str) -> LoadReport:
    """Assign the TF1 checkpoint at ``prefix`` to ``model`` (from :func:`build_musicnn`) by name.

    Raises ``ValueError`` if a model weight has no checkpoint variable, a non-optimizer
    checkpoint variable is left unused, or shapes disagree: a silent partial load would give
    a plausible-looking but wrong tagger.
    """
    reader = open_checkpoint(prefix)
    available = reader.get_variable_to_shape_map()
    report = LoadReport(ignored=sorted(n for n in available if _OPTIMIZER_VARIABLE.search(n)))
    wanted = {n for n in available if not _OPTIMIZER_VARIABLE.search(n)}

    pairs = checkpoint_mapping(model)
    assigned_weights = {id(weight) for weight, _ in pairs}
    unmapped = [w.path for w in model.weights if id(w) not in assigned_weights]
    if unmapped:
        raise ValueError(f"model weights without a checkpoint variable: {unmapped}")
    used: set[str] = set()
    values = []
    for weight, name in pairs:
        if name not in wanted:
            raise ValueError(f"checkpoint at {prefix} has no variable {name} (for {weight.path})")
        if name in used:
            raise ValueError(f"checkpoint variable {name} mapped twice")
        used.add(name)
        shape = tuple(int(d) for d in weight.shape)
        values.append((weight, _fit(np.asarray(reader.get_tensor(name), dtype=np.float32), shape, name)))
        report.assigned.append((weight.path, name, shape))
    unused = sorted(wanted - used)
    if unused:
        raise ValueError(f"checkpoint variables not used by the port: {unused}")
    for weight, value in values:  # assign only once everything is known to fit
        weight.assign(value)
    return report


def load_pretrained(download: bool = True) -> tuple[Any, LoadReport]:
    """``build_musicnn()`` with the MSD_musicnn weights, located by :mod:`tagger.train.musicnn.pretrained`."""
    model = build_musicnn()
    return model, load_checkpoint_weights(model, locate_checkpoint(download=download))
