"""How often "more like this" stays in the genre: the share of each track's 10 nearest neighbours (cosine of the
stored embedding, as `tagger similar` ranks them) that share its genre, beside a random pick's share.

    .venv/bin/python bench/similar_quality.py [--datasets ../shared/datasets] [--cache DIR] [--json out.json]

Embeddings are what a default scan stores: the mean of the shipped model's embeddings over the card's spread
windows (``tagger.train.musicnn.genres.outputs``, cached; computed where missing), rounded to float16. Per data set:

* AllMusic-4Q (659 clips, 480 artists): "shares its genre" = the two clips' AllMusic genre lists intersect
  (labels as published, several per clip, noisy); neighbours by the same artist are removed (artist column).
* GTZAN sample (181 clips, half of them classical): one genre per clip. GTZAN has no artist column; the
  fault-filtered lists keep artists apart, so "artist removed" drops neighbours of the same genre *and* list,
  which removes every same-artist clip and some others: a conservative figure. Shown without removal too.

Random baseline: for each track, the share of its candidates (all others, minus the removed) that share its
genre, which is what 10 random picks share on average. Only tracks with at least one same-genre candidate count
("answerable"). Spread: a 95% interval from 1000 bootstrap resamples of artists (groups), and per genre.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagger.similar import unit_rows
from tagger.train.musicnn.genres.labels import allmusic_clips, gtzan_clips
from tagger.train.musicnn.genres.outputs import load_or_compute
from tagger.train.musicnn.genres.run import gtzan_paths

K = 10
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Corpus:
    name: str
    labels: list[frozenset[str]]
    groups: list[str]  # same group = same artist (removed from the candidates)
    vectors: np.ndarray  # (clips, dims), unit rows


def shares(corpus: Corpus, remove_group: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per track: the neighbours' share, the random baseline, and whether it is answerable."""
    n = len(corpus.labels)
    scores = corpus.vectors @ corpus.vectors.T
    groups = np.array(corpus.groups)
    same = np.array([[bool(a & b) for b in corpus.labels] for a in corpus.labels])
    found, baseline, answerable = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    for i in range(n):
        allowed = np.ones(n, bool)
        allowed[i] = False
        if remove_group:
            allowed &= groups != groups[i]
        candidates = np.flatnonzero(allowed)
        if len(candidates) < K:
            continue
        answerable[i] = same[i, candidates].any()
        top = candidates[np.argsort(-scores[i, candidates], kind="stable")[:K]]
        found[i] = same[i, top].mean()
        baseline[i] = same[i, candidates].mean()
    return found, baseline, answerable


def bootstrap(values: np.ndarray, groups: Sequence[str], reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean, resampling whole groups (artists): tracks of one artist are not independent."""
    by_group: dict[str, list[float]] = defaultdict(list)
    for value, group in zip(values, groups, strict=True):
        by_group[group].append(float(value))
    sums = np.array([sum(v) for v in by_group.values()])
    counts = np.array([len(v) for v in by_group.values()])
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(reps):
        pick = rng.integers(0, len(sums), len(sums))
        means.append(sums[pick].sum() / counts[pick].sum())
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def evaluate(corpus: Corpus, remove_group: bool) -> dict[str, object]:
    found, baseline, answerable = shares(corpus, remove_group)
    keep = np.flatnonzero(answerable)
    groups = [corpus.groups[i] for i in keep]
    per_genre = {}
    for genre in sorted({g for labels in corpus.labels for g in labels}):
        members = [i for i in keep if genre in corpus.labels[i]]
        if len(members) >= 5:
            per_genre[genre] = {
                "tracks": len(members),
                "neighbours": round(float(found[members].mean()), 3),
                "random": round(float(baseline[members].mean()), 3),
            }
    return {
        "corpus": corpus.name,
        "same_artist_removed": remove_group,
        "tracks": len(corpus.labels),
        "answerable": len(keep),
        "neighbours": round(float(found[keep].mean()), 3),
        "neighbours_95": [round(x, 3) for x in bootstrap(found[keep], groups)],
        "random": round(float(baseline[keep].mean()), 3),
        "random_95": [round(x, 3) for x in bootstrap(baseline[keep], groups)],
        "lift": round(float(found[keep].mean() / baseline[keep].mean()), 2),
        # every genre counted once (GTZAN's sample is half classical)
        "macro_neighbours": round(float(np.mean([r["neighbours"] for r in per_genre.values()])), 3),
        "macro_random": round(float(np.mean([r["random"] for r in per_genre.values()])), 3),
        "per_genre": per_genre,
    }


def stored_embeddings(paths: Sequence[Path], cache: Path) -> np.ndarray:
    """What a default scan stores per clip: the mean over the spread windows, as float16."""
    outputs = load_or_compute(paths, cache, "spread", "musicnn", lambda line: print(line, file=sys.stderr))
    means = np.stack([o["embedding"].mean(axis=0) for o in outputs]).astype(np.float16).astype(np.float32)
    return unit_rows(means)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=REPO.parent.parent / "shared" / "datasets")
    parser.add_argument("--cache", type=Path, default=REPO.parent / "_cache" / "genres" / "outputs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    allmusic = allmusic_clips(args.datasets / "allmusic-4q")
    gtzan_root = args.datasets / "gtzan-sample"
    gtzan = gtzan_clips(gtzan_root, gtzan_paths(gtzan_root, None))
    corpora = [
        Corpus(
            "allmusic-4q",
            [frozenset(c.source_labels) for c in allmusic],
            [c.group for c in allmusic],
            stored_embeddings([c.path for c in allmusic], args.cache),
        ),
        Corpus(
            "gtzan-sample",
            [frozenset(c.source_labels) for c in gtzan],
            [c.group for c in gtzan],
            stored_embeddings([c.path for c in gtzan], args.cache),
        ),
    ]
    figures = [evaluate(corpora[0], True), evaluate(corpora[1], False), evaluate(corpora[1], True)]
    print(f"share of the {K} nearest neighbours sharing the track's genre (mean over answerable tracks, 95% CI)")
    for f in figures:
        removal = "same artist removed" if f["same_artist_removed"] else "same artist kept"
        print(
            f"  {f['corpus']:<13} {removal:<20} {f['answerable']:>3}/{f['tracks']} tracks  "
            f"neighbours {f['neighbours']:.3f} {f['neighbours_95']}  random {f['random']:.3f} {f['random_95']}  "
            f"lift {f['lift']:.2f}x; per genre (macro) {f['macro_neighbours']:.3f} vs {f['macro_random']:.3f}"
        )
        for genre, row in f["per_genre"].items():  # type: ignore[attr-defined]
            print(f"      {genre:<16} {row['tracks']:>3}  {row['neighbours']:.3f}  random {row['random']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
