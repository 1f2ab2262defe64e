"""The shipped musicnn model as one Keras graph: frozen backbone, GTZAN head, MSD tags, ``genres`` vocabulary.

Outputs (all computed from one pass of the int8-friendly backbone):

* ``gtzan``: softmax over the 10 GTZAN genres, the linear head with its standardiser folded
  into the Dense weights (one Dense on the embedding, plus one on the taggram when the head
  uses it: two layers summed rather than one on a concatenation, a layout that also suits
  full-integer int8, where a concatenation would force one scale on the 0-1 taggram and the embedding);
* ``msd``: the genre-like MSD tags' sigmoid scores (a column gather of the taggram: exact in int8);
* ``genres``: a broad vocabulary, MSD genre tags plus ``classical``, ``disco`` and ``reggae``
  from the GTZAN head, each as a *margin score* ``sigmoid(logit(p_j) − logit(t_j))``, which is
  0.5 exactly at the label's raw threshold ``t_j`` (for an MSD tag, its own logit through one
  Dense + sigmoid on the embedding; for a GTZAN genre, the logit of its softmax probability).
  Sources on different scales (a softmax over 10 genres vs. independent tag sigmoids) thus rank
  by how far each clears its own threshold, in the same log-odds units, not by raw value;
* ``taggram`` (all 50 tags) and ``embedding`` (200-d), as the backbone gives them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.train.convert import float16_weights, representative, selective_int8, write
from tagger.train.musicnn.pretrained import MSD_LABELS
from tagger.train.musicnn.softmax_head import FEATURE_SETS, SoftmaxHead


@dataclass(frozen=True)
class VocabularySpec:
    """The ``genres`` output: MSD tags (with their raw thresholds) then GTZAN genres (with theirs)."""

    msd_tags: tuple[str, ...]
    msd_thresholds: tuple[float, ...]
    gtzan_genres: tuple[str, ...]  # e.g. ("classical", "disco", "reggae")
    gtzan_thresholds: tuple[float, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.msd_tags + self.gtzan_genres


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def margin_scores(taggram: np.ndarray, gtzan: np.ndarray, spec: VocabularySpec, genres: Sequence[str]) -> np.ndarray:
    """The ``genres`` output computed in numpy from float window outputs (what the graph computes)."""
    tags = np.clip(taggram[:, [MSD_LABELS.index(t) for t in spec.msd_tags]].astype(np.float64), 1e-7, 1 - 1e-7)
    msd_part = 1 / (1 + np.exp(-(np.log(tags / (1 - tags)) - [_logit(t) for t in spec.msd_thresholds])))
    probs = np.clip(gtzan[:, [genres.index(g) for g in spec.gtzan_genres]].astype(np.float64), 1e-6, 1 - 1e-6)
    gtzan_part = 1 / (1 + np.exp(-(np.log(probs / (1 - probs)) - [_logit(t) for t in spec.gtzan_thresholds])))
    return np.concatenate([msd_part, gtzan_part], axis=1).astype(np.float32)


def _layers() -> Any:
    """Small custom layers, defined on first use so importing this module does not import Keras."""
    import keras  # deferred: TensorFlow loads only when a model is built or converted

    class TakeColumns(keras.layers.Layer):
        """``x[:, columns]``: a TFLite GATHER, exact in int8."""

        def __init__(self, columns: Sequence[int], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.columns = [int(c) for c in columns]

        def call(self, x: Any) -> Any:
            return keras.ops.take(x, np.asarray(self.columns, dtype=np.int32), axis=-1)

        def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            return (*input_shape[:-1], len(self.columns))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "columns": self.columns}

    class LogitMargin(keras.layers.Layer):
        """``sigmoid(logit(p[:, columns]) − logit(thresholds))`` of probabilities ``p`` (float ops)."""

        def __init__(self, columns: Sequence[int], thresholds: Sequence[float], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.columns = [int(c) for c in columns]
            self.thresholds = [float(t) for t in thresholds]

        def call(self, p: Any) -> Any:
            ops = keras.ops
            picked = ops.clip(ops.take(p, np.asarray(self.columns, dtype=np.int32), axis=-1), 1e-6, 1 - 1e-6)
            offsets = np.asarray([_logit(t) for t in self.thresholds], dtype=np.float32)
            return ops.sigmoid(ops.log(picked) - ops.log(1.0 - picked) - ops.convert_to_tensor(offsets))

        def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            return (*input_shape[:-1], len(self.columns))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "columns": self.columns, "thresholds": self.thresholds}

    return keras, TakeColumns, LogitMargin


def build_export_model(
    backbone: Any,
    head: SoftmaxHead,
    genres: Sequence[str],
    msd_tags: Sequence[str],
    spec: VocabularySpec | None,
) -> Any:
    """One Keras model: ``logmel`` -> gtzan, msd, [genres,] taggram, embedding (see the module docstring).

    ``backbone`` is :func:`~tagger.train.musicnn.layouts.fast_layout` of the loaded port (its
    ``logits`` layer gives the MSD tags' logits from the embedding).
    """
    keras, take_columns, logit_margin = _layers()
    layers = keras.layers
    embedding = backbone.output["embedding"]
    taggram = backbone.output["taggram"]

    kernel, bias = head.folded()
    blocks = FEATURE_SETS[head.feature_set]
    partials: list[Any] = []
    offset = 0
    for block in blocks:
        source = embedding if block == "embedding" else taggram
        width = int(source.shape[-1])
        dense = layers.Dense(len(genres), use_bias=not partials, name=f"gtzan_from_{block}")
        partials.append(dense(source))
        dense.set_weights([kernel[offset : offset + width]] + ([bias] if len(partials) == 1 else []))
        offset += width
    if offset != kernel.shape[0]:
        raise ValueError(f"head expects {kernel.shape[0]} features, the blocks give {offset}")
    logits = partials[0] if len(partials) == 1 else layers.Add(name="gtzan_logits")(partials)
    gtzan = layers.Activation("softmax", name="gtzan")(logits)
    msd = take_columns([MSD_LABELS.index(t) for t in msd_tags], name="msd")(taggram)
    outputs = {"gtzan": gtzan, "msd": msd, "taggram": taggram, "embedding": embedding}

    if spec is not None:
        # MSD part: the tags' own logits (a Dense on the embedding with the backbone's weights), shifted.
        logits_layer = backbone.get_layer("logits")
        tag_kernel, tag_bias = (np.asarray(w) for w in logits_layer.get_weights())
        columns = [MSD_LABELS.index(t) for t in spec.msd_tags]
        margin = layers.Dense(len(columns), activation="sigmoid", name="genres_msd")
        msd_part = margin(embedding)
        margin.set_weights(
            [
                tag_kernel[:, columns],
                (tag_bias[columns] - np.array([_logit(t) for t in spec.msd_thresholds])).astype(np.float32),
            ]
        )
        # GTZAN part: the logit of the head's probability, shifted by the threshold's logit.
        columns = [list(genres).index(g) for g in spec.gtzan_genres]
        gtzan_part = logit_margin(columns, spec.gtzan_thresholds, name="genres_gtzan")(gtzan)
        outputs["genres"] = layers.Concatenate(axis=-1, name="genres")([msd_part, gtzan_part])
    return keras.Model(inputs=backbone.input, outputs=outputs, name="musicnn_transfer")


# ---------------------------------------------------------------------------------------------- shipped forms
# int8 where it pays and keeps its accuracy: musicnn's timbral front-end in int8, the rest in float32.
#
# Measured on GTZAN windows (relative error of the 200-d embedding, int8 vs float):
#
# * full-integer int8 of :func:`~tagger.train.musicnn.layouts.integer_friendly`: ~30-37%. The taggram's
#   rankings survive (zero-shot top-3 is fine) but a linear genre head flips ~10% of tracks. Almost all
#   of it enters through the residual mid-end's *mean* pooling (``cnn2``, ``cnn3``): the back-end batch
#   norm multiplies those channels' means by up to ~120, i.e. their variation across windows is
#   ~1/100 of a unit, below one int8 step of tensors spanning up to ~160 units. Rebuilding the
#   pooling as full-window depthwise convolutions and equalising channel ranges (tried) only brings it
#   to ~15%: the per-frame values themselves lack the resolution;
# * dynamic-range int8 (int8 weights, activations quantized on the fly): ~12-15%, for the same reason;
# * int16 activations with int8 weights: ~7%, but ~50x slower (no optimised kernels);
# * int8 for the two *timbral* blocks only (conv, batch norm, frequency max-pool: ~85% of the
#   network's 1.3 G multiply-adds), the rest in float32: ~4% (equalising those blocks' channel ranges,
#   tried, gains a few tenths of a point; int8 for timbral_74 alone still gives ~3.5%: the mid-end's
#   high-gain means amplify any front-end rounding). That is what :func:`selective_int8` builds, on
#   :func:`~tagger.train.musicnn.layouts.fast_layout` (im2col + one matrix multiply per timbral block, batch norm
#   after the pool, in float): an int8 convolution over musicnn's single input channel is slower than float,
#   the same multiply-adds as one int8 matrix multiply are not.
#
# The converter still leaves an int8 quantize/dequantize round trip on a few fixed-range float outputs (the
# gtzan softmax, the ``genres`` sigmoids): they are rounded to steps of 1/256, well below the front-end's error.
TIMBRAL = ("timbral_74", "timbral_77")
# Keras layers of :func:`~tagger.train.musicnn.layouts.fast_layout` computed in int8: the timbral blocks' im2col
# (padding, shifted slices), their matrix multiply and their frequency max-pool. Their batch norms follow the pool,
# in float; the input batch norm is float too, so the input is rounded to int8 once, after it.
INT8_LAYERS = frozenset(
    {"timbral_pad", "timbral_time_shifts"}
    | {f"{t}_{k}" for t in TIMBRAL for k in ("patches", "conv", "pool", "squeeze")}
)
_LAYOUT = (
    "fast_layout (tagger/train/musicnn/layouts.py): each timbral block as an im2col (strided slices) and one 1x1 "
    "convolution (a matrix multiply over 266 / 469 values per output), every front-end block's ReLU and batch norm "
    "after its frequency max-pool"
)
# The shipped file's forms (TransferConfig.quantization), as the card describes them.
QUANTIZATION_DETAIL = {
    "float16-weights": f"{_LAYOUT}; float32 arithmetic, weights stored as float16 (half the file; dequantized "
    "once at load). The fastest form at parity on x86 without VNNI: int8 matrix multiplies gain ~1.3x there and "
    "flip ~1-2% of out-of-domain tracks (see tagger/train/musicnn/export.py)",
    "int8-selective": f"{_LAYOUT}; int8 for the timbral im2col, matrix multiplies and max-pools (~85% of the "
    "multiply-adds), float32 for every other op; float32 input and outputs. Full-integer int8 leaves the embedding "
    "~30% off and flips ~10% of tracks: see tagger/train/musicnn/export.py",
}


def convert_shipped(
    model: Any, quantization: str, calibration: np.ndarray, path: Path, calibration_windows: int = 256, seed: int = 0
) -> dict[str, str]:
    """The shipped form ``quantization`` of ``model`` written to ``path``: float16 weights, or int8-selective
    (:data:`INT8_LAYERS`, calibrated on a seeded sample of ``calibration_windows`` of ``calibration``, training
    windows only); returns the card's output tensor names."""
    if quantization == "float16-weights":
        return write(float16_weights(model), path)
    if quantization == "int8-selective":
        samples = representative(calibration, count=calibration_windows, seed=seed)
        return write(selective_int8(model, samples, INT8_LAYERS), path)
    raise ValueError(f"quantization {quantization!r}: one of {sorted(QUANTIZATION_DETAIL)}")


# Text written into files for each label (the models' labels are lower-case identifiers or MSD's own spelling).
GTZAN_NAMES = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco", "hiphop": "Hip-Hop",
    "jazz": "Jazz", "metal": "Metal", "pop": "Pop", "reggae": "Reggae", "rock": "Rock",
}  # fmt: skip
MSD_NAMES = {tag: " ".join(word.capitalize() for word in tag.split()) for tag in MSD_LABELS}

MSD_NAMES.update({"Hip-Hop": "Hip-Hop", "rnb": "R&B", "House": "House", "electronica": "Electronica"})


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
