"""Is a second backbone worth its cost? MTT_musicnn's outputs beside the shipped model's, for the CV only.

The musicnn wheel also ships MTT_musicnn (the same network trained on MagnaTagATune's tags). Its 200-d
embedding and 50-tag taggram are computed on exactly the windows the shipped model's cached outputs hold
(their ``starts``), with the authors' TF1 graph (:func:`~tagger.train.musicnn.pretrained.reference_outputs`),
and appended to each window's features. The bar: a second backbone only if the CV gains >= 3 macro-F1 points,
since it doubles the model time per window. Never shipped: the shipped graph does not compute it
(:func:`tagger.train.musicnn.genres.run.run` refuses ``--ship`` with it).

Cache: one ``.npz`` per clip under ``cache_dir/MTT_musicnn/``, keyed by the clip's path, size, mtime
and window starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tagger import audio, features
from tagger.features import FeatureParams
from tagger.train.cache import save_npz
from tagger.train.musicnn.genres.labels import LabelledClip
from tagger.train.musicnn.pretrained import SECOND_MODEL_NAME, locate_checkpoint, reference_outputs


def _key(path: Path, starts: np.ndarray) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{np.round(starts, 4).tolist()}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def second_outputs(
    clips: Sequence[LabelledClip],
    outputs: Sequence[dict[str, np.ndarray]],
    params: FeatureParams,
    cache_dir: Path,
    log: Callable[[str], None] = lambda _: None,
) -> list[np.ndarray]:
    """Per clip, MTT_musicnn's ``(windows, 250)`` embedding ++ taggram on the windows of ``outputs``."""
    folder = cache_dir / SECOND_MODEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    prefix: str | None = None
    length = features.window_samples(params)
    found: list[np.ndarray] = []
    for number, (clip, output) in enumerate(zip(clips, outputs, strict=True)):
        entry = folder / f"{_key(clip.path, output['starts'])}.npz"
        if not entry.exists():
            prefix = prefix or locate_checkpoint(name=SECOND_MODEL_NAME)
            info = audio.probe(clip.path)
            starts = [round(s * params.sample_rate) for s in output["starts"]]
            segments = audio.read_segments(clip.path, params.sample_rate, starts, length, info)
            windows = np.stack([features.window_from_segment(s, params) for s in segments])
            taggram, embedding = reference_outputs(prefix, windows)
            save_npz(entry, {"embedding": embedding, "taggram": taggram})
            if number % 50 == 0:
                log(f"{SECOND_MODEL_NAME}: {number}/{len(clips)} clips")
        with np.load(entry) as stored:
            found.append(np.concatenate([stored["embedding"], stored["taggram"]], axis=1))
    return found


def with_second(x: np.ndarray, second: Sequence[np.ndarray]) -> np.ndarray:
    """The window rows ``x`` (clip by clip, as :func:`~tagger.train.musicnn.genres.cv.build_dataset` stacks them)
    with the second backbone's columns appended."""
    extra = np.concatenate(second).astype(x.dtype)
    if len(extra) != len(x):
        raise ValueError(f"{len(extra)} second-backbone windows for {len(x)} windows of the shipped model")
    return np.concatenate([x, extra], axis=1)
