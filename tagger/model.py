"""Model cards, the TFLite runtime, and batched window inference on CPU.

A model is a ``.tflite`` file plus a JSON card beside it. The card says everything the
tagger needs: feature parameters, the input window, and the *heads* (vocabularies) the
network outputs, e.g. ``gtzan`` (10 genres, one per track) or ``msd`` (multi-label tags
with per-tag thresholds), plus an optional ``embedding`` output stored per track.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tagger.errors import ModelError
from tagger.features import FeatureParams

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "musicnn" if (MODELS_DIR / "musicnn.json").exists() else "paper"
CARD_SCHEMA_VERSION = 1

HeadTask = Literal["multiclass", "multilabel"]
# "output": the graph computes the head (one output tensor). "linear": a logistic layer the tagger computes
# in numpy over named outputs the graph already has (``embedding``, ``taggram``), so a new head ships in the
# card alone and the model file stays as it is.
HeadKind = Literal["output", "linear"]
# What a head's labels are written as: "genre" heads are vocabularies for the genre field; a "mood" head (the
# card's ``mood_head``) is written into the MOOD field and is never a genre vocabulary.
HeadRole = Literal["genre", "mood"]
# A linear head's scores: one sigmoid per label (one-vs-rest heads), or a softmax over its labels (a
# multinomial head such as the four mood quadrants, whose scores sum to 1).
Activation = Literal["sigmoid", "softmax"]


@dataclass(frozen=True)
class Head:
    """One output vocabulary of a model."""

    name: str
    labels: tuple[str, ...]
    task: HeadTask = "multiclass"
    output: str = ""  # TFLite output tensor name; "" = the only output
    thresholds: dict[str, float] = field(default_factory=dict)  # multilabel: per-label cut-offs
    tag_names: dict[str, str] = field(default_factory=dict)  # label -> genre text written to files
    kind: HeadKind = "output"
    inputs: tuple[str, ...] = ()  # linear: the card outputs concatenated as its input, in order
    weights: np.ndarray | None = field(default=None, compare=False)  # linear: (input features, labels)
    bias: np.ndarray | None = field(default=None, compare=False)  # linear: (labels,)
    abstain_below: float | None = None  # nothing is written when the top score is below this
    role: HeadRole = "genre"
    activation: Activation = "sigmoid"  # linear heads only

    def genre_name(self, label: str) -> str:
        return self.tag_names.get(label, label)

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Head:
        kind = data.get("kind", "output")
        weights = bias = None
        if kind == "linear":
            weights = np.asarray(data["weights"], dtype=np.float32)
            bias = np.asarray(data["bias"], dtype=np.float32)
            if weights.ndim != 2 or weights.shape[1] != len(data["labels"]) or bias.shape != (len(data["labels"]),):
                raise TypeError(f"head {name!r}: weights {weights.shape} / bias {bias.shape} do not fit its labels")
        elif kind != "output":
            raise TypeError(f"head {name!r}: unknown kind {kind!r}")
        role, activation = data.get("role", "genre"), data.get("activation", "sigmoid")
        if role not in ("genre", "mood"):
            raise TypeError(f"head {name!r}: unknown role {role!r}")
        if activation not in ("sigmoid", "softmax") or (activation == "softmax" and kind != "linear"):
            raise TypeError(f"head {name!r}: activation {activation!r} is not one a {kind} head can have")
        abstain = data.get("abstain_below")
        return cls(
            name=name,
            labels=tuple(data["labels"]),
            task=data.get("task", "multiclass"),
            output=data.get("output", ""),
            thresholds={k: float(v) for k, v in data.get("thresholds", {}).items()},
            tag_names=dict(data.get("tag_names", {})),
            kind=kind,
            inputs=tuple(data.get("inputs", ())),
            weights=weights,
            bias=bias,
            abstain_below=None if abstain is None else float(abstain),
            role=role,
            activation=activation,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"labels": list(self.labels), "task": self.task, "output": self.output}
        if self.thresholds:
            data["thresholds"] = self.thresholds
        if self.tag_names:
            data["tag_names"] = self.tag_names
        if self.kind == "linear":
            assert self.weights is not None and self.bias is not None
            data |= {"kind": "linear", "inputs": list(self.inputs), "weights": self.weights.tolist()}
            data["bias"] = self.bias.tolist()
        if self.abstain_below is not None:
            data["abstain_below"] = self.abstain_below
        if self.role != "genre":
            data["role"] = self.role
        if self.activation != "sigmoid":
            data["activation"] = self.activation
        return data

    def linear_probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """A linear head's per-row scores (its ``activation``) over its concatenated ``inputs`` ``(rows, features)``."""
        assert self.weights is not None and self.bias is not None
        logits = inputs.astype(np.float32) @ self.weights + self.bias
        if self.activation == "softmax":
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -40.0, 40.0)))).astype(np.float32)


@dataclass(frozen=True)
class ModelCard:
    """The JSON card written by the trainer beside each model file."""

    name: str
    version: str
    model_file: Path
    features: FeatureParams
    heads: dict[str, Head]
    default_head: str
    embedding_output: str | None = None
    input_layout: Literal["frames_mels", "frames_mels_channel"] = "frames_mels"
    max_windows: int | None = None  # default window policy: None = every window
    mood_head: str | None = None  # the head (role "mood") written into the MOOD field; None: the model has none
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def output_name(self, name: str) -> str:
        """The graph output behind a linear head's input name (``embedding`` -> the card's ``embedding_output``)."""
        value = self.raw.get(f"{name}_output") or (self.embedding_output if name == "embedding" else None)
        if not value:
            raise ModelError(f"model card {self.name!r} names no {name!r} output")
        return str(value)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ModelError(f"cannot read model card {path}: {error}") from error
        try:
            heads = {name: Head.from_dict(name, head) for name, head in data["heads"].items()}
            card = cls(
                name=data["name"],
                version=str(data["version"]),
                model_file=(path.parent / data["model_file"]).resolve(),
                features=FeatureParams.from_dict(data["features"]),
                heads=heads,
                default_head=data.get("default_head", next(iter(heads))),
                embedding_output=data.get("embedding_output"),
                input_layout=data.get("input_layout", "frames_mels"),
                max_windows=data.get("max_windows"),
                mood_head=data.get("mood_head"),
                raw=data,
            )
        except (KeyError, TypeError, StopIteration) as error:
            raise ModelError(f"model card {path} is missing or has a bad field: {error}") from error
        if card.default_head not in card.heads:
            raise ModelError(f"model card {path}: default_head {card.default_head!r} is not among its heads")
        if card.heads[card.default_head].role != "genre":
            raise ModelError(f"model card {path}: default_head {card.default_head!r} is not a genre head")
        if card.mood_head is not None and (
            card.mood_head not in card.heads or card.heads[card.mood_head].role != "mood"
        ):
            raise ModelError(f"model card {path}: mood_head {card.mood_head!r} is not among its mood heads")
        for head in card.heads.values():
            if head.kind == "linear":
                names = [card.output_name(name) for name in head.inputs]
                if not names:
                    raise ModelError(f"model card {path}: linear head {head.name!r} has no inputs")
        return card


def card_path_for(name_or_path: str | Path | None) -> Path:
    """Resolve ``--model``: a shipped model's name, a card (.json) or a model file (.tflite) with its card."""
    target = str(name_or_path or DEFAULT_MODEL)
    candidate = Path(target).expanduser()
    if candidate.suffix == ".tflite":
        candidate = candidate.with_suffix(".json")
    if candidate.suffix == ".json" and candidate.exists():
        return candidate
    shipped = MODELS_DIR / f"{target}.json"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in MODELS_DIR.glob("*.json"))) or "none"
    raise ModelError(f"no model card for {target!r} (shipped models: {known}; or give a .json/.tflite path)")


def load_card(name_or_path: str | Path | None = None) -> ModelCard:
    return ModelCard.load(card_path_for(name_or_path))


def interpreter_class() -> tuple[type, str]:
    """The TFLite ``Interpreter`` class: ai-edge-litert, else tflite-runtime, else TensorFlow."""
    forced = os.environ.get("TAGGER_TFLITE_RUNTIME")
    candidates = [
        ("ai_edge_litert.interpreter", "ai-edge-litert"),
        ("tflite_runtime.interpreter", "tflite-runtime"),
        ("tensorflow.lite", "tensorflow"),
    ]
    if forced:
        if forced not in (label for _, label in candidates):
            names = ", ".join(label for _, label in candidates)
            raise ModelError(f"TAGGER_TFLITE_RUNTIME: expected one of {names}, got {forced!r}")
        candidates = [c for c in candidates if c[1] == forced]
    for module_name, label in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module.Interpreter, label
    raise ModelError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime, or tensorflow)")


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS (OpenBLAS) at ``threads`` threads, for this whole process.

    The features' mel projection is a small matrix product that OpenBLAS would otherwise spread
    over every core: on a busy machine that costs up to 100x the CPU of one thread, and fights
    the other scan workers. The process classifies with ``threads`` threads, so the features do too.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return
    threadpool_limits(limits=threads, user_api="blas")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while C++ code logs to it (Python's own stderr is unaffected)."""
    if os.environ.get("TAGGER_DEBUG"):
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Prediction:
    """Per-window outputs: ``probabilities[head]`` is ``(windows, labels)``; ``embeddings`` ``(windows, dims)``."""

    probabilities: dict[str, np.ndarray]
    embeddings: np.ndarray | None


class Classifier:
    """A loaded model: feeds batches of windows to the TFLite interpreter and dequantizes the outputs."""

    def __init__(self, card: ModelCard, threads: int | None = None, batch_size: int = 8) -> None:
        self.card = card
        if not card.model_file.exists():
            raise ModelError(f"model file {card.model_file} named by card {card.name!r} does not exist")
        interpreter_type, self.runtime = interpreter_class()
        limit_blas_threads(threads or 1)
        with _native_stderr_silenced():  # the runtime's "Created TensorFlow Lite XNNPACK delegate" line
            try:
                self._interpreter = interpreter_type(model_path=str(card.model_file), num_threads=threads or 1)
                self._input = self._interpreter.get_input_details()[0]
                self.batch_size = batch_size
                self._resize(batch_size)
            except (ValueError, RuntimeError) as error:  # what the runtimes raise for a bad or truncated file
                raise ModelError(f"cannot load model file {card.model_file}: {error}") from error
        outputs = {d["name"]: d for d in self._interpreter.get_output_details()}
        self._output_index = {
            name: self._find_output(outputs, head.output) for name, head in card.heads.items() if head.kind == "output"
        }
        self._embedding_index = self._find_output(outputs, card.embedding_output) if card.embedding_output else None
        # Linear heads: the graph outputs they read, each read once per batch whatever the number of heads.
        self._linear_inputs = {
            name: [self._find_output(outputs, card.output_name(i)) for i in head.inputs]
            for name, head in card.heads.items()
            if head.kind == "linear"
        }

    def _resize(self, batch: int) -> None:
        shape = list(self._input["shape"])
        shape[0] = batch
        self._interpreter.resize_tensor_input(self._input["index"], shape)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output_details = {d["index"]: d for d in self._interpreter.get_output_details()}

    def _find_output(self, outputs: dict[str, dict[str, Any]], name: str) -> int:
        if not name and len(outputs) == 1:
            return int(next(iter(outputs.values()))["index"])
        if name in outputs:
            return int(outputs[name]["index"])
        raise ModelError(f"model {self.card.name!r} has no output {name!r} (it has {sorted(outputs)})")

    def _quantize(self, windows: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return windows.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(windows / scale + zero_point), info.min, info.max).astype(dtype)

    def _read(self, index: int) -> np.ndarray:
        detail = self._output_details[index]
        values = self._interpreter.get_tensor(index)
        if detail["dtype"] != np.float32:
            scale, zero_point = detail["quantization"]
            return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return values.astype(np.float32)

    def predict(self, windows: np.ndarray) -> Prediction:
        """Outputs for ``windows`` of shape ``(n, window_frames, n_mels)``."""
        if self.card.input_layout == "frames_mels_channel":
            windows = windows[..., None]
        probabilities: dict[str, list[np.ndarray]] = {name: [] for name in self.card.heads}
        embeddings: list[np.ndarray] = []
        for begin in range(0, len(windows), self.batch_size):
            batch = windows[begin : begin + self.batch_size]
            count = len(batch)
            if count != int(self._input["shape"][0]):
                # Resize (~0.1 ms) rather than pad: a track's short last batch, or a window budget below the
                # batch size, must not pay for batch_size windows (a musicnn window costs ~50 ms).
                self._resize(count)
            self._interpreter.set_tensor(self._input["index"], self._quantize(batch))
            self._interpreter.invoke()
            for name, index in self._output_index.items():
                probabilities[name].append(self._read(index)[:count])
            read: dict[int, np.ndarray] = {}
            for name, indices in self._linear_inputs.items():
                for index in indices:
                    if index not in read:
                        read[index] = self._read(index)[:count]
                inputs = np.concatenate([read[index] for index in indices], axis=1)
                probabilities[name].append(self.card.heads[name].linear_probabilities(inputs))
            if self._embedding_index is not None:
                embeddings.append(self._read(self._embedding_index)[:count])
        return Prediction(
            probabilities={name: np.concatenate(chunks) for name, chunks in probabilities.items()},
            embeddings=np.concatenate(embeddings) if embeddings else None,
        )
