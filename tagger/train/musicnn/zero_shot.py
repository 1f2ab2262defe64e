"""Zero-shot genre check of the MSD_musicnn port on GTZAN clips, and its int8 TFLite conversion.

MSD_musicnn was never trained on GTZAN, but seven GTZAN genres have a last.fm tag of the same
meaning among its 50 outputs. Restricting the ranking to the genre-like tags and asking whether
a clip's genre is among the top 3 checks that the port (and its int8 conversion) still hears
music the way the authors' network does, without any training of our own.

Run as ``python -m tagger.train.musicnn.zero_shot GTZAN_DIR [--int8 OUT.tflite]``; :func:`run` is the
function behind it, for the project's CLI.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger.audio import decode
from tagger.features import log_mel, split_windows
from tagger.model import Classifier, Head, ModelCard
from tagger.train import datasets
from tagger.train.convert import full_integer_int8, output_names, representative, write
from tagger.train.musicnn.layouts import integer_friendly
from tagger.train.musicnn.port import MUSICNN_FEATURES, load_pretrained
from tagger.train.musicnn.pretrained import MSD_LABELS

# The GTZAN genres MSD names, and the MSD tags that count as a hit for each.
GTZAN_TO_MSD: dict[str, tuple[str, ...]] = {
    "blues": ("blues",),
    "jazz": ("jazz",),
    "pop": ("pop",),
    "rock": ("rock", "classic rock"),
    "hiphop": ("Hip-Hop",),
    "metal": ("metal", "heavy metal"),
    "country": ("country",),
}

# The genre / style tags among the 50. Left out: moods (beautiful, Mellow, chill, sad, happy,
# sexy, catchy, party), decades (00s ... 60s, oldies), voices (female/male vocalist(s)) and
# instrumentation (guitar, acoustic, instrumental), which say nothing about genre.
GENRE_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
    "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock",
    "ambient", "experimental", "Hip-Hop", "country", "easy listening", "funk", "electro", "heavy metal",
    "Progressive rock", "rnb", "indie pop", "House",
)  # fmt: skip

Predictor = Callable[[np.ndarray], np.ndarray]
"""Windows ``(n, 187, 96)`` float32 -> tag probabilities ``(n, 50)``."""


@dataclass
class WindowedClip:
    """One labelled clip and its network input windows."""

    genre: str
    path: Path
    windows: np.ndarray  # (n, 187, 96)


@dataclass
class ClipResult:
    genre: str
    path: Path
    scores: np.ndarray  # (50,) mean sigmoid over the clip's windows
    top: tuple[str, ...]  # best genre-like tags, best first


@dataclass
class ZeroShotReport:
    """Per-clip rankings and per-genre top-k agreement."""

    results: list[ClipResult] = field(default_factory=list)
    top_k: int = 3

    def hits(self) -> dict[str, tuple[int, int]]:
        """``genre -> (clips whose top k holds a matching tag, clips)`` for the genres MSD names."""
        counts: dict[str, list[int]] = {}
        for result in self.results:
            accepted = GTZAN_TO_MSD.get(result.genre)
            if accepted is None:
                continue
            entry = counts.setdefault(result.genre, [0, 0])
            entry[0] += any(tag in accepted for tag in result.top[: self.top_k])
            entry[1] += 1
        return {genre: (hit, total) for genre, (hit, total) in counts.items()}

    def total(self) -> tuple[int, int]:
        per_genre = self.hits().values()
        return sum(h for h, _ in per_genre), sum(n for _, n in per_genre)

    def top1_by_genre(self) -> dict[str, collections.Counter[str]]:
        """How often each genre-like tag comes first, per GTZAN genre (also the unmapped ones)."""
        table: dict[str, collections.Counter[str]] = {}
        for result in self.results:
            table.setdefault(result.genre, collections.Counter())[result.top[0]] += 1
        return table

    def summary(self) -> str:
        lines = []
        for genre, (hit, total) in self.hits().items():
            lines.append(f"{genre:>10}: {hit}/{total} top-{self.top_k} contain {'/'.join(GTZAN_TO_MSD[genre])}")
        hit, total = self.total()
        lines.append(f"{'total':>10}: {hit}/{total}")
        for genre, counter in self.top1_by_genre().items():
            if genre not in GTZAN_TO_MSD:
                common = ", ".join(f"{tag} {n}" for tag, n in counter.most_common(4))
                lines.append(f"{genre:>10}: top-1 {common} (of {sum(counter.values())})")
        return "\n".join(lines)


def windows_of(path: Path) -> np.ndarray:
    """Consecutive 3-s windows of ``path`` (a clip shorter than one window gives one, padded)."""
    return split_windows(log_mel(decode(path, MUSICNN_FEATURES.sample_rate), MUSICNN_FEATURES), MUSICNN_FEATURES)


def gtzan_paths(root: Path, genres: Iterable[str] | None = None) -> list[tuple[str, Path]]:
    """``(genre, path)`` for audio files in ``root/<genre>/``, sorted (the one GTZAN layout reader)."""
    dataset = datasets.scan(root, list(genres) if genres is not None else None)
    return [(clip.genre, clip.path) for clip in dataset.clips]


def load_clips(root: Path, genres: Iterable[str] | None = None) -> list[WindowedClip]:
    """Decode every clip once; the windows are reused by each model compared."""
    return [WindowedClip(genre, path, windows_of(path)) for genre, path in gtzan_paths(root, genres)]


def evaluate(
    clips: Sequence[WindowedClip], predict: Predictor, genre_tags: Sequence[str] = GENRE_TAGS, top_k: int = 3
) -> ZeroShotReport:
    """Rank ``genre_tags`` by mean sigmoid over each clip's windows; count top-k agreement."""
    columns = np.array([MSD_LABELS.index(tag) for tag in genre_tags])
    report = ZeroShotReport(top_k=top_k)
    for clip in clips:
        scores = predict(clip.windows).mean(axis=0)
        order = np.argsort(-scores[columns], kind="stable")
        report.results.append(ClipResult(clip.genre, clip.path, scores, tuple(genre_tags[i] for i in order)))
    return report


def keras_predictor(model: Any, batch_size: int = 64) -> Predictor:
    """Taggram of a :func:`~tagger.train.musicnn.port.build_musicnn` model, in inference mode."""

    def predict(windows: np.ndarray) -> np.ndarray:
        chunks = [
            np.asarray(model(windows[s : s + batch_size], training=False)["taggram"])
            for s in range(0, len(windows), batch_size)
        ]
        return np.concatenate(chunks)

    return predict


def tflite_predictor(model_path: Path, output: str = "taggram", threads: int = 2) -> Predictor:
    """One signature output of a (float or int8) TFLite file through the tagger's own
    :class:`~tagger.model.Classifier` (quantizing in, dequantizing out), with a card made in memory."""
    names = output_names(model_path.read_bytes())
    head = Head(output, (), task="multilabel", output=names[output])  # labels unused: only the scores are read
    card = ModelCard(model_path.stem, "0", model_path, MUSICNN_FEATURES, {output: head}, output)
    classifier = Classifier(card, threads=threads, batch_size=64)

    def predict(windows: np.ndarray) -> np.ndarray:
        return classifier.predict(np.asarray(windows, dtype=np.float32)).probabilities[output]

    return predict


def representative_windows(clips: Sequence[WindowedClip], limit: int = 300, seed: int = 0) -> np.ndarray:
    """Up to ``limit`` windows drawn evenly from ``clips``, to calibrate int8 ranges."""
    return np.concatenate(representative(np.concatenate([clip.windows for clip in clips]), count=limit, seed=seed))


def convert_int8(model: Any, calibration: np.ndarray, out_path: Path, rearrange: bool = True) -> Path:
    """Full-integer int8 TFLite of the port (outputs taggram + embedding), dynamic batch dimension.

    ``rearrange`` converts :func:`~tagger.train.musicnn.layouts.integer_friendly` of the port (same
    function, laid out so int8 keeps its accuracy); ``False`` converts the port's own layout,
    which loses much of it (kept for comparison).
    """
    if rearrange:
        model = integer_friendly(model)
    write(full_integer_int8(model, [window[None].astype(np.float32) for window in calibration]), out_path)
    return out_path


def top1_agreement(a: Sequence[ClipResult], b: Sequence[ClipResult], all_tags: bool = False) -> float:
    """Fraction of clips whose best tag (genre-like, or among all 50) is the same in two reports."""
    if all_tags:
        same = [int(np.argmax(x.scores)) == int(np.argmax(y.scores)) for x, y in zip(a, b, strict=True)]
    else:
        same = [x.top[0] == y.top[0] for x, y in zip(a, b, strict=True)]
    return float(np.mean(same)) if same else float("nan")


def run(
    root: Path,
    int8_out: Path | None = None,
    calibration_genres: Sequence[str] = ("classical", "disco", "reggae"),
    download: bool = True,
) -> str:
    """Zero-shot figures for the float port (and, with ``int8_out``, its int8 TFLite); returns the text.

    Calibration windows come from ``calibration_genres`` (by default the genres MSD has no tag
    for, so the clips scored are not the ones that set the int8 ranges).
    """
    started = time.monotonic()
    model, load = load_pretrained(download=download)
    clips = load_clips(root)
    float_report = evaluate(clips, keras_predictor(model))
    lines = [
        f"MSD_musicnn port: {load.parameters} parameters; {len(clips)} clips, "
        f"{sum(len(c.windows) for c in clips)} windows",
        "float (Keras):",
        float_report.summary(),
    ]
    if int8_out is not None:
        calibration = representative_windows([c for c in clips if c.genre in set(calibration_genres)])
        convert_int8(model, calibration, int8_out)
        int8_report = evaluate(clips, tflite_predictor(int8_out))
        float_results, int8_results = float_report.results, int8_report.results
        lines += [
            f"int8 TFLite: {int8_out} ({int8_out.stat().st_size} bytes, {len(calibration)} calibration windows "
            f"from {', '.join(calibration_genres)})",
            int8_report.summary(),
            f"float vs int8 top-1 agreement: genre-like tags {top1_agreement(float_results, int8_results):.3f}, "
            f"all 50 tags {top1_agreement(float_results, int8_results, all_tags=True):.3f}",
        ]
    lines.append(f"({time.monotonic() - started:.0f} s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", type=Path, help="folder of <genre>/<clip> audio files (GTZAN layout)")
    parser.add_argument("--int8", type=Path, default=None, help="also convert to int8 TFLite at this path")
    args = parser.parse_args(argv)
    print(run(args.root, args.int8))


if __name__ == "__main__":
    main()
