"""The JSON model card written beside each model: what the tagger needs, and how the model was made.

:func:`tagger.model.ModelCard.load` reads the first part (features, heads, outputs, layout);
the rest (architecture, split, metrics, parity, fingerprint...) documents the model. Each
pipeline builds its own card (:mod:`tagger.train.paper.cnn_card`, :mod:`tagger.train.musicnn.transfer_card`);
this module writes it and checks it with the tagger's loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tagger.model import ModelCard

TRAINER_VERSION = "0.1.0"


def write_card(card: dict[str, Any], path: Path) -> ModelCard:
    """Write ``card`` to ``path`` and read it back with the tagger's loader, so a bad card fails here."""
    path.write_text(json.dumps(strict_json(card), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return ModelCard.load(path)


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float as ``None``: JSON has no NaN, and jq or a browser refuse a
    card that has one (a figure that could not be computed, e.g. precision where nothing was written, is null)."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def card_text(card: dict[str, Any]) -> str:
    """A card as the trainer ships it (indent 2), each linear head's weight rows one line each, to keep it readable."""
    stashed = {}
    for name, head in card.get("heads", {}).items():
        if isinstance(head.get("weights"), list):
            stashed[name] = head["weights"]
            head["weights"] = f"@WEIGHTS:{name}@"
    try:
        text = json.dumps(strict_json(card), indent=2, allow_nan=False)
    finally:
        for name, weights in stashed.items():
            card["heads"][name]["weights"] = weights
    for name, weights in stashed.items():
        rows = ",\n        ".join(json.dumps(row) for row in weights)
        text = text.replace(json.dumps(f"@WEIGHTS:{name}@"), "[\n        " + rows + "\n      ]")
    return text + "\n"


def plain(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with numpy scalars and arrays as plain JSON types (as a reader of the file sees it)."""

    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    return json.loads(json.dumps(card, default=default))
