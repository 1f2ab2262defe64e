"""int8 where it pays and keeps its accuracy: musicnn's timbral front-end in int8, the rest in float32.

Measured on GTZAN windows (relative error of the 200-d embedding, int8 vs float):

* full-integer int8 of :func:`~tagger.train.musicnn.port.integer_friendly`: ~30-37%. The taggram's
  rankings survive (zero-shot top-3 is fine) but a linear genre head flips ~10% of tracks. Almost all
  of it enters through the residual mid-end's *mean* pooling (``cnn2``, ``cnn3``): the back-end batch
  norm multiplies those channels' means by up to ~120, i.e. their variation across windows is
  ~1/100 of a unit, below one int8 step of tensors spanning up to ~160 units. Rebuilding the
  pooling as full-window depthwise convolutions and equalising channel ranges (tried) only brings it
  to ~15%: the per-frame values themselves lack the resolution;
* dynamic-range int8 (int8 weights, activations quantized on the fly): ~12-15%, for the same reason;
* int16 activations with int8 weights: ~7%, but ~50x slower (no optimised kernels);
* int8 for the two *timbral* blocks only (conv, batch norm, frequency max-pool: ~85% of the
  network's 1.3 G multiply-adds), the rest in float32: ~4% (equalising those blocks' channel ranges,
  tried, gains a few tenths of a point; int8 for timbral_74 alone still gives ~3.5%: the mid-end's
  high-gain means amplify any front-end rounding). That is what :func:`selective_int8` builds, on
  :func:`~tagger.train.musicnn.port.fast_layout` (im2col + one matrix multiply per timbral block, batch norm
  after the pool, in float): an int8 convolution over musicnn's single input channel is slower than float,
  the same multiply-adds as one int8 matrix multiply are not.

The converter still leaves an int8 quantize/dequantize round trip on a few fixed-range float outputs (the
gtzan softmax, the ``genres`` sigmoids): they are rounded to steps of 1/256, well below the front-end's error.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TIMBRAL = ("timbral_74", "timbral_77")
# Keras layers of :func:`~tagger.train.musicnn.port.fast_layout` computed in int8: the timbral blocks' im2col
# (padding, shifted slices), their matrix multiply and their frequency max-pool. Their batch norms follow the pool,
# in float; the input batch norm is float too, so the input is rounded to int8 once, after it.
INT8_LAYERS = frozenset(
    {"timbral_pad", "timbral_time_shifts"}
    | {f"{t}_{k}" for t in TIMBRAL for k in ("patches", "conv", "pool", "squeeze")}
)


def _layer_of(part: str) -> str | None:
    """The Keras layer a TFLite tensor-name part belongs to (``model_1/<layer>_1/Op`` -> ``<layer>``)."""
    bits = part.split("/")
    if len(bits) < 2:
        return None
    return bits[1][:-2] if bits[1].endswith("_1") else bits[1]


def float_nodes(tensor_names: Sequence[str], int8_layers: frozenset[str] = INT8_LAYERS) -> list[str]:
    """Tensors to keep in float: every one not computed by ``int8_layers`` alone (fused names join several layers
    with ';'; the model's outputs, named ``StatefulPartitionedCall:n``, belong to no layer and stay float too)."""
    denied = []
    for name in tensor_names:
        owners = {layer for part in name.split(";") if (layer := _layer_of(part)) is not None}
        if not owners or not owners <= int8_layers:
            denied.append(name)
    return denied


def selective_int8(model: Any, calibration: Sequence[np.ndarray], int8_layers: frozenset[str] = INT8_LAYERS) -> bytes:
    """TFLite of ``model`` with :data:`INT8_LAYERS` in int8 (calibrated on ``calibration``, batches of one) and
    every other op in float32; float32 input and outputs.

    Built with TensorFlow's quantization debugger, whose ``denylisted_nodes`` keep named ops in float: a first
    full conversion gives the tensor names, :func:`float_nodes` picks the non-timbral ones.
    """
    import tensorflow as tf

    from tagger.model import interpreter_class

    def dataset() -> Iterator[list[np.ndarray]]:
        for window in calibration:
            yield [window]

    def converter() -> Any:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = dataset
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        return conv

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter chatter; the interpreter's deprecation notice
        full = converter().convert()
        interpreter_type, _ = interpreter_class()
        names = [detail["name"] for detail in interpreter_type(model_content=full).get_tensor_details()]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_nodes(names, int8_layers))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter(), debug_dataset=lambda: iter([[calibration[0]]]), debug_options=options
        )
        return bytes(debugger.get_nondebug_quantized_model())


def write(content: bytes, path: Path) -> dict[str, str]:
    """Write a converted model; return its signature output -> tensor name mapping (for the card)."""
    from tagger.train.convert import output_names

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return output_names(content)
