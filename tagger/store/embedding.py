"""How a track's mean window embedding is kept in ``Result.embedding``: float16 bytes (half of float32)."""

from __future__ import annotations

import numpy as np


def embedding_to_bytes(embedding: np.ndarray | None) -> bytes | None:
    return None if embedding is None else np.asarray(embedding, dtype=np.float16).tobytes()


def embedding_from_bytes(data: bytes | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, dtype=np.float16).astype(np.float32)


def as_stored(embedding: np.ndarray) -> np.ndarray:
    """``embedding`` rounded as the database keeps it: a fresh scan and a re-tag from the database agree."""
    return np.asarray(embedding, dtype=np.float16).astype(np.float32)
