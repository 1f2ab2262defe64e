"""The shipped model's own per-window outputs for every clip of a genre data set, cached outside the repo.

The ``genres`` head is linear over outputs the shipped graph already computes (200-d embedding,
50-tag MSD taggram), so it is fit on exactly what the tagger sees: each clip is decoded, cut into
windows and run through :class:`tagger.model.Classifier` on the shipped card, as a scan does.
Two window sets per clip: ``all`` (consecutive windows, the ``all`` policy) and ``spread`` (the
card's ``max_windows`` spread windows a default scan reads). The old default head's probabilities
(``gtzan``) are kept too, so it can be scored on the same folds.

Cache: one ``.npz`` per clip under ``cache_dir/<model fingerprint>/``, keyed by the clip's path,
size and mtime; a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from tagger import audio, features
from tagger.model import Classifier, Head, ModelCard, load_card
from tagger.train.cache import save_npz

OUTPUTS_VERSION = 1


# ``spread-mid`` / ``spread-outer``: the middle two / the outer two of the spread windows (4 spread windows
# cost 4x the CPU of one; on a busy machine the middle pair is computed for every clip first, the rest after).
WindowSet = Literal["spread", "spread-mid", "spread-outer", "all"]
OUTPUT_NAMES = ("embedding", "taggram", "gtzan")


def model_fingerprint(card: ModelCard) -> str:
    digest = hashlib.sha256(card.model_file.read_bytes())
    return digest.hexdigest()[:16]


def outputs_card(card: ModelCard) -> ModelCard:
    """The card with its taggram output read as an extra head (the Classifier reads heads' outputs)."""
    taggram = card.raw.get("taggram_output")
    if not taggram:
        raise ValueError(f"model {card.name!r} has no taggram output")
    heads = {"gtzan": card.heads["gtzan"]}
    heads["taggram"] = Head(name="taggram", labels=tuple(str(i) for i in range(50)), task="multilabel", output=taggram)
    return replace(card, heads=heads)


def clip_key(path: Path, window_set: WindowSet, budget: int) -> str:
    stat = path.stat()
    text = f"{OUTPUTS_VERSION}|{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{window_set}|{budget}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def clip_outputs(classifier: Classifier, path: Path, window_set: WindowSet, budget: int) -> dict[str, np.ndarray]:
    """``starts`` (seconds) and the per-window ``embedding``, ``taggram`` and ``gtzan`` of one clip."""
    params = classifier.card.features
    info = audio.probe(path)
    total = info.samples_at(params.sample_rate)
    starts = features.window_starts(total, params, None if window_set == "all" else budget)
    if window_set in ("spread-mid", "spread-outer") and len(starts) == budget:
        middle = len(starts) // 2
        mid = starts[middle - 1 : middle + 1]
        starts = mid if window_set == "spread-mid" else [s for s in starts if s not in mid]
    length = features.window_samples(params)
    windows = [
        features.window_from_segment(segment, params)
        for segment in audio.read_segments(path, params.sample_rate, starts, length, info)
    ]
    prediction = classifier.predict(np.stack(windows))
    assert prediction.embeddings is not None
    return {
        "starts": np.array(starts[: len(windows)]) / params.sample_rate,
        "embedding": prediction.embeddings,
        "taggram": prediction.probabilities["taggram"],
        "gtzan": prediction.probabilities["gtzan"],
    }


def load_or_compute(
    paths: Sequence[Path],
    cache_dir: Path,
    window_set: WindowSet = "spread",
    model: str | Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, np.ndarray]]:
    """Every clip's outputs on ``window_set``, from the cache where present (computed and stored otherwise)."""
    card = load_card(model)
    budget = card.max_windows or 4
    folder = cache_dir / model_fingerprint(card)
    folder.mkdir(parents=True, exist_ok=True)
    classifier: Classifier | None = None
    results: list[dict[str, np.ndarray]] = []
    for number, path in enumerate(paths):
        target = folder / f"{clip_key(path, window_set, budget)}.npz"
        if not target.exists():
            if classifier is None:
                classifier = Classifier(outputs_card(card), threads=1)
            outputs = clip_outputs(classifier, path, window_set, budget)
            save_npz(target, outputs)
            if number % 50 == 0:
                log(f"{window_set}: {number}/{len(paths)} clips")
        with np.load(target) as data:
            results.append({name: data[name] for name in ("starts", *OUTPUT_NAMES)})
    return results
