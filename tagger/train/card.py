"""The JSON model card written beside each model: what the tagger needs, and how the model was made.

:func:`tagger.model.ModelCard.load` reads the first part (features, heads, outputs, layout);
the rest (architecture, split, metrics, parity, fingerprint...) documents the model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tagger.features import FeatureParams
from tagger.model import CARD_SCHEMA_VERSION, ModelCard
from tagger.train.paper.cnn import EMBEDDING
from tagger.train.paper.configs import Config

TRAINER_VERSION = "0.1.0"


def build_card(
    *,
    name: str,
    version: str,
    config: Config,
    params: FeatureParams,
    genres: tuple[str, ...],
    outputs: dict[str, str],
    model_file: str,
    float_model_file: str,
    float_outputs: dict[str, str] | None = None,
    architecture: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    parity: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    data_fingerprint: str = "",
    licence: str = "",
) -> dict[str, Any]:
    """The card as a dict (JSON-ready); ``outputs`` maps Keras output names to TFLite tensor names."""
    card: dict[str, Any] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": name,
        "version": version,
        "model_file": model_file,
        "features": params.to_dict(),
        "heads": {config.head: {"labels": list(genres), "task": "multiclass", "output": outputs[config.head]}},
        "default_head": config.head,
        "input_layout": "frames_mels",
        "embedding_output": outputs[EMBEDDING],
    }
    if config.max_windows is not None:
        card["max_windows"] = config.max_windows
    card.update(
        {
            "quantization": "int8",
            "float_model_file": float_model_file,
            "float_outputs": float_outputs or {},
            "configuration": config.name,
            "configuration_detail": config.to_dict(),
            "architecture": architecture or {},
            "seed": config.seed,
            "split": split or {},
            "metrics": metrics or {},
            "parity": parity or {},
            "training": training or {},
            "data_fingerprint": data_fingerprint,
            "trainer_version": TRAINER_VERSION,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "licence": licence,
        }
    )
    return json.loads(json.dumps(card))  # plain JSON types (tuples become lists), as a reader sees it


def write_card(card: dict[str, Any], path: Path) -> ModelCard:
    """Write ``card`` to ``path`` and read it back with the tagger's loader, so a bad card fails here."""
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return ModelCard.load(path)
