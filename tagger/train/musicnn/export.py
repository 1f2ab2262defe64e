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

from tagger.train.musicnn.pretrained import MSD_LABELS
from tagger.train.musicnn.softmax_head import FEATURE_SETS, LinearHead


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
    import keras

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
    head: LinearHead,
    genres: Sequence[str],
    msd_tags: Sequence[str],
    spec: VocabularySpec | None,
) -> Any:
    """One Keras model: ``logmel`` -> gtzan, msd, [genres,] taggram, embedding (see the module docstring).

    ``backbone`` is :func:`~tagger.train.musicnn.port.fast_layout` of the loaded port (its
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


def float16_weights(model: Any) -> bytes:
    """TFLite of ``model`` with its weights stored as float16 (float32 arithmetic; half the file's size)."""
    import tensorflow as tf

    from tagger.train.convert import _quiet

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    with _quiet():
        return bytes(converter.convert())


def convert_float(model: Any, path: Path) -> dict[str, str]:
    """Float TFLite of ``model`` (kept beside the int8 file for parity checks)."""
    import tensorflow as tf

    from tagger.train.convert import _quiet, output_names

    with _quiet():
        content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return output_names(content)
