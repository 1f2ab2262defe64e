"""The paper CNN's model card (:mod:`tagger.train.card` writes it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tagger.features import FeatureParams
from tagger.model import CARD_SCHEMA_VERSION
from tagger.train.card import TRAINER_VERSION
from tagger.train.paper.cnn import EMBEDDING
from tagger.train.paper.configs import Config


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
