"""Keras model -> TFLite, every form the trainer ships or compares, with output tensor names for the card.

Forms: float32 (:func:`float_tflite`), float16 weights (:func:`float16_weights`), full-integer
int8 (:func:`full_integer_int8`) and int8 for named layers only (:func:`selective_int8`).

The full-integer int8 model quantizes everything including its input and output (``inference_input_type``
and ``inference_output_type`` int8), calibrated on a seeded sample of training windows; the
tagger's :class:`tagger.model.Classifier` quantizes windows with the input's scale and
dequantizes outputs. The batch dimension stays dynamic (the tagger resizes it).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.model import interpreter_class

REPRESENTATIVE_WINDOWS = 256


@dataclass(frozen=True)
class Converted:
    """Paths of the written models and the TFLite output tensor name of each Keras output."""

    int8_path: Path
    float_path: Path
    outputs: dict[str, str]  # Keras output name (head, "embedding") -> TFLite tensor name
    int8_bytes: int
    float_bytes: int


def representative(windows: np.ndarray, count: int = REPRESENTATIVE_WINDOWS, seed: int = 0) -> list[np.ndarray]:
    """Up to ``count`` training windows, drawn without replacement with ``seed``, as batches of one."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(windows), size=min(count, len(windows)), replace=False))
    return [windows[i : i + 1].astype(np.float32) for i in chosen]


def output_names(model_content: bytes) -> dict[str, str]:
    """Map each signature output (the Keras output names) to its tensor name as the interpreter reports it."""
    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_content=model_content)
    runner = interpreter.get_signature_runner()
    names = {key: str(detail["name"]) for key, detail in runner.get_output_details().items()}
    reported = {d["name"] for d in interpreter.get_output_details()}
    if not set(names.values()) <= reported:
        raise RuntimeError(f"signature outputs {names} are not among the interpreter's outputs {sorted(reported)}")
    signature = interpreter.get_input_details()[0]["shape_signature"]
    if signature[0] != -1:
        raise RuntimeError(f"converted model has a fixed batch dimension: {signature.tolist()}")
    return names


def write(content: bytes, path: Path) -> dict[str, str]:
    """Write a converted model; return its signature output -> tensor name mapping (for the card)."""
    outputs = output_names(content)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return outputs


def convert(export_model: Any, train_windows: np.ndarray, out_dir: Path, name: str, seed: int = 0) -> Converted:
    """Write ``<name>.tflite`` (int8) and ``<name>.float.tflite`` into ``out_dir``."""
    float_content = float_tflite(export_model)
    int8_content = full_integer_int8(export_model, representative(train_windows, seed=seed))
    int8_path = out_dir / f"{name}.tflite"
    float_path = out_dir / f"{name}.float.tflite"
    outputs = write(int8_content, int8_path)
    if set(write(float_content, float_path)) != set(outputs):
        raise RuntimeError("float and int8 models disagree on their outputs")
    return Converted(int8_path, float_path, outputs, len(int8_content), len(float_content))


def float_tflite(model: Any) -> bytes:
    """Float32 TFLite of ``model`` (kept beside a quantized file for parity checks)."""
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    with _quiet():
        return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def float16_weights(model: Any) -> bytes:
    """TFLite of ``model`` with its weights stored as float16 (float32 arithmetic; half the file's size)."""
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    with _quiet():
        return bytes(converter.convert())


def _int8_converter(model: Any, samples: Sequence[np.ndarray], builtins: bool) -> Any:
    """A converter calibrated on ``samples`` (batches of one window); ``builtins`` lets float ops remain."""
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    def dataset() -> Iterator[list[np.ndarray]]:
        for window in samples:
            yield [window]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
        [tf.lite.OpsSet.TFLITE_BUILTINS] if builtins else []
    )
    return converter


def full_integer_int8(model: Any, samples: Sequence[np.ndarray]) -> bytes:
    """Full-integer int8 TFLite of ``model``, int8 input and outputs included, calibrated on ``samples``
    (batches of one window)."""
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    converter = _int8_converter(model, samples, builtins=False)
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _quiet():
        return bytes(converter.convert())


def _layer_of(part: str) -> str | None:
    """The Keras layer a TFLite tensor-name part belongs to (``model_1/<layer>_1/Op`` -> ``<layer>``)."""
    bits = part.split("/")
    if len(bits) < 2:
        return None
    return bits[1][:-2] if bits[1].endswith("_1") else bits[1]


def float_nodes(tensor_names: Sequence[str], int8_layers: frozenset[str]) -> list[str]:
    """Tensors to keep in float: every one not computed by ``int8_layers`` alone (fused names join several layers
    with ';'; the model's outputs, named ``StatefulPartitionedCall:n``, belong to no layer and stay float too)."""
    denied = []
    for name in tensor_names:
        owners = {layer for part in name.split(";") if (layer := _layer_of(part)) is not None}
        if not owners or not owners <= int8_layers:
            denied.append(name)
    return denied


def selective_int8(model: Any, calibration: Sequence[np.ndarray], int8_layers: frozenset[str]) -> bytes:
    """TFLite of ``model`` with the Keras layers ``int8_layers`` in int8 (calibrated on ``calibration``, batches
    of one) and every other op in float32; float32 input and outputs.

    Built with TensorFlow's quantization debugger, whose ``denylisted_nodes`` keep named ops in float: a first
    full conversion gives the tensor names, :func:`float_nodes` picks the others.
    """
    import tensorflow as tf  # deferred: TensorFlow loads only when a model is built or converted

    with _quiet(everything=True):  # converter chatter; the interpreter's deprecation notice
        full = _int8_converter(model, calibration, builtins=True).convert()
        interpreter_type, _ = interpreter_class()
        names = [detail["name"] for detail in interpreter_type(model_content=full).get_tensor_details()]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_nodes(names, int8_layers))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_int8_converter(model, calibration, builtins=True),
            debug_dataset=lambda: iter([[calibration[0]]]),
            debug_options=options,
        )
        return bytes(debugger.get_nondebug_quantized_model())


@contextlib.contextmanager
def _quiet(everything: bool = False) -> Iterator[None]:
    """Swallow the SavedModel signature listing the converter prints on stdout for every conversion,
    and its warning that int8 inputs have no preset statistics (the calibration sets them); with
    ``everything``, every warning."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        if everything:
            warnings.simplefilter("ignore")
        else:
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        yield
