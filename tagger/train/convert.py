"""Keras model -> float TFLite and full-integer int8 TFLite, with output tensor names for the card.

The int8 model quantizes everything including its input and output (``inference_input_type``
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
    from tagger.model import interpreter_class

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


def convert(export_model: Any, train_windows: np.ndarray, out_dir: Path, name: str, seed: int = 0) -> Converted:
    """Write ``<name>.tflite`` (int8) and ``<name>.float.tflite`` into ``out_dir``."""
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    with _quiet():
        float_content = tf.lite.TFLiteConverter.from_keras_model(export_model).convert()
    int8_content = full_integer_int8(export_model, representative(train_windows, seed=seed))
    outputs = output_names(int8_content)
    if set(output_names(float_content)) != set(outputs):
        raise RuntimeError("float and int8 models disagree on their outputs")
    int8_path = out_dir / f"{name}.tflite"
    float_path = out_dir / f"{name}.float.tflite"
    int8_path.write_bytes(int8_content)
    float_path.write_bytes(float_content)
    return Converted(int8_path, float_path, outputs, len(int8_content), len(float_content))


def full_integer_int8(model: Any, samples: Sequence[np.ndarray]) -> bytes:
    """Full-integer int8 TFLite of ``model``, int8 input and outputs included, calibrated on ``samples``
    (batches of one window)."""
    import tensorflow as tf

    def dataset() -> Iterator[list[np.ndarray]]:
        for window in samples:
            yield [window]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _quiet():
        return bytes(converter.convert())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow the SavedModel signature listing the converter prints on stdout for every conversion,
    and its warning that int8 inputs have no preset statistics (the calibration sets them)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        yield
