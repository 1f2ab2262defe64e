"""Artist-grouped cross-validation of the ``genres`` head, with thresholds chosen inside training folds.

Every split keeps a group on one side: an AllMusic artist, or a GTZAN genre's fault-filtered
list (:func:`tagger.train.musicnn.genres.labels.gtzan_clips`). Per outer fold, an inner grouped CV on the
training clips gives out-of-fold scores from which ``C``, each genre's threshold (best F1 with
the genre written on at most ``max_overuse`` x its positives) and the abstain cut-off on the top
score (the lowest one whose first-genre precision reaches ``target_precision``) are chosen; the
head refit on the whole training part then scores the held-out clips. The old default (the
``gtzan`` head, its labels mapped to the vocabulary) is scored on the same held-out clips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.album import AlbumTrack, album_probabilities
from tagger.train.musicnn.genres.head import LinearGenres, TrainingSet, fit_genres, track_scores
from tagger.train.musicnn.genres.labels import DISCO, GENRES, GTZAN_TO_GENRE, LabelledClip, label_matrix
from tagger.train.thresholds import best_f1_threshold

OLD_TO_GENRES: dict[str, tuple[str, ...]] = {g: (v,) for g, v in GTZAN_TO_GENRE.items()} | {"disco": DISCO}
OLD_LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
OLD_MIN_CONFIDENCE = 0.3  # the config's default min_confidence: below it the old default writes nothing
ABSTAIN_GRID = np.round(np.arange(0.50, 0.996, 0.01), 2)


@dataclass
class Dataset:
    """All clips' window rows and labels; ``old`` is the gtzan head's track probabilities."""

    clips: list[LabelledClip]
    x: np.ndarray  # (windows, 250): embedding ++ taggram
    clip: np.ndarray  # (windows,)
    labels: np.ndarray  # (clips, genres)
    taggram_means: np.ndarray
    old: np.ndarray  # (clips, 10)
    genres: tuple[str, ...] = GENRES

    def subset(self, indices: np.ndarray) -> TrainingSet:
        position = -np.ones(len(self.clips), np.int64)
        position[indices] = np.arange(len(indices))
        rows = np.isin(self.clip, indices)
        return TrainingSet(
            x=self.x[rows],
            clip=position[self.clip[rows]],
            labels=self.labels[indices],
            partials=[self.clips[i].partials for i in indices],
            taggram_means=self.taggram_means[indices],
        )


def build_dataset(clips: Sequence[LabelledClip], outputs: Sequence[dict[str, np.ndarray]]) -> Dataset:
    x = np.concatenate([np.concatenate([o["embedding"], o["taggram"]], axis=1) for o in outputs])
    clip = np.concatenate([np.full(len(o["embedding"]), i) for i, o in enumerate(outputs)])
    return Dataset(
        clips=list(clips),
        x=x.astype(np.float64),
        clip=clip,
        labels=label_matrix(clips),
        taggram_means=np.stack([o["taggram"].mean(axis=0) for o in outputs]),
        old=np.stack([o["gtzan"].mean(axis=0) for o in outputs]),
    )


def group_folds(groups: Sequence[str], folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of ``folds`` folds; a group never spans two. Largest groups first, each to the smallest fold."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    rng.shuffle(names)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    names.sort(key=lambda g: -len(members[g]))  # stable: ties keep the shuffled order
    parts: list[list[int]] = [[] for _ in range(folds)]
    for name in names:
        min(parts, key=len).extend(members[name])
    return [np.array(sorted(p)) for p in parts]


def correct(genre: str, clip: LabelledClip) -> bool:
    """Right when the clip has the genre, or it is a member of one of the clip's partial labels."""
    return genre in clip.positives or any(genre in partial for partial in clip.partials)


# ----- choices made on training folds -----


def best_threshold(scores: np.ndarray, labels: np.ndarray, max_overuse: float) -> float:
    """Cut-off with the best F1 on known labels, writing the genre on at most ``max_overuse`` x its positives."""
    known = labels >= 0
    positive = labels[known] == 1
    if not positive.any():
        return 1.0  # never written: nothing to learn it from
    return best_f1_threshold(scores[known], positive, max_written=max_overuse * int(positive.sum())).value


def first_genre(margins: np.ndarray, genres: Sequence[str]) -> tuple[list[str], np.ndarray]:
    top = margins.argmax(axis=1)
    return [genres[i] for i in top], margins.max(axis=1)


def precision_coverage(
    margins: np.ndarray, clips: Sequence[LabelledClip], genres: Sequence[str], cutoffs: np.ndarray
) -> list[tuple[float, float, float]]:
    """(cut-off, first-genre precision, coverage) for each abstain cut-off on the top score."""
    names, top = first_genre(margins, genres)
    right = np.array([correct(g, c) for g, c in zip(names, clips, strict=True)])
    rows = []
    for t in cutoffs:
        written = top >= max(t, 0.5)
        coverage = float(written.mean())
        precision = float(right[written].mean()) if written.any() else float("nan")
        rows.append((float(t), precision, coverage))
    return rows


def choose_abstain(curve: list[tuple[float, float, float]], target_precision: float) -> float:
    """The lowest cut-off whose precision reaches the target (the most coverage); else the most precise one."""
    for t, precision, _ in curve:
        if precision >= target_precision:
            return t
    return max(curve, key=lambda row: (np.nan_to_num(row[1]), -row[0]))[0]


@dataclass
class FoldChoice:
    c: float
    thresholds: np.ndarray
    abstain: float
    inner_macro_f1: float


def choose_on_training(
    data: Dataset,
    train: np.ndarray,
    c_grid: Sequence[float],
    inner_folds: int,
    seed: int,
    max_overuse: float,
    target_precision: float,
) -> FoldChoice:
    groups = [data.clips[i].group for i in train]
    inner = group_folds(groups, inner_folds, seed + 1000)
    best: FoldChoice | None = None
    genres = data.genres
    for c in c_grid:
        oof = np.zeros((len(train), len(genres)))
        for part in inner:
            rest = np.setdiff1d(np.arange(len(train)), part)
            head = fit_genres(data.subset(train[rest]), genres, c)
            held = data.subset(train[part])
            oof[part] = track_scores(head.probabilities(held.x), held.clip, len(part))
        labels = data.labels[train]
        thresholds = np.array([best_threshold(oof[:, j], labels[:, j], max_overuse) for j in range(len(genres))])
        f1s = [per_genre(oof[:, j] >= thresholds[j], labels[:, j])["f1"] for j in range(len(genres))]
        macro = float(np.nanmean(f1s))
        if best is None or macro > best.inner_macro_f1:
            margins = margin(oof, thresholds)
            curve = precision_coverage(margins, [data.clips[i] for i in train], genres, ABSTAIN_GRID)
            best = FoldChoice(c, thresholds, choose_abstain(curve, target_precision), macro)
    assert best is not None
    return best


def margin(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Scores moved so each genre's threshold sits at 0.5 (what the shipped head outputs)."""
    t = np.clip(thresholds, 1e-4, 1 - 1e-4)
    p = np.clip(scores, 1e-9, 1 - 1e-9)
    return 1 / (1 + np.exp(-(np.log(p / (1 - p)) - np.log(t / (1 - t)))))


def per_genre(decisions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    known = labels >= 0
    d, y = decisions[known], labels[known] == 1
    tp = float((d & y).sum())
    precision = tp / d.sum() if d.sum() else float("nan")
    recall = tp / y.sum() if y.sum() else float("nan")
    f1 = 2 * tp / (d.sum() + y.sum()) if (d.sum() + y.sum()) else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(y.sum()), "written": int(d.sum())}


# ----- the outer CV -----


@dataclass
class CVResult:
    """Held-out track scores of every repeat: ``margins[r]`` (clips, genres); ``folds[r]`` test indices."""

    margins: list[np.ndarray] = field(default_factory=list)
    abstain: list[np.ndarray] = field(default_factory=list)  # per clip: the cut-off of the fold that tested it
    folds: list[list[np.ndarray]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)


def cross_validate(
    data: Dataset,
    folds: int = 5,
    repeats: int = 3,
    c_grid: Sequence[float] = (0.01, 0.1),
    inner_folds: int = 3,
    max_overuse: float = 1.5,
    target_precision: float = 0.80,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> CVResult:
    result = CVResult()
    groups = [c.group for c in data.clips]
    for repeat in range(repeats):
        tests = group_folds(groups, folds, seed + repeat)
        margins = np.zeros((len(data.clips), len(data.genres)))
        abstain = np.zeros(len(data.clips))
        for number, test in enumerate(tests):
            train = np.setdiff1d(np.arange(len(data.clips)), test)
            choice = choose_on_training(data, train, c_grid, inner_folds, seed + repeat, max_overuse, target_precision)
            head = fit_genres(data.subset(train), data.genres, choice.c)
            held = data.subset(test)
            scores = track_scores(head.probabilities(held.x), held.clip, len(test))
            margins[test] = margin(scores, choice.thresholds)
            abstain[test] = choice.abstain
            result.choices.append(
                {"repeat": repeat, "fold": number, "C": choice.c, "abstain": choice.abstain,
                 "inner_macro_f1": choice.inner_macro_f1, "train_clips": len(train), "test_clips": len(test)}
            )  # fmt: skip
            log(f"repeat {repeat} fold {number}: C={choice.c} abstain={choice.abstain:.2f}")
        result.margins.append(margins)
        result.abstain.append(abstain)
        result.folds.append(tests)
    return result


def final_head(
    data: Dataset, c_grid: Sequence[float], inner_folds: int, max_overuse: float, target_precision: float, seed: int
) -> tuple[LinearGenres, FoldChoice]:
    """The shipped head: choices by grouped CV on every clip, then a fit on every clip."""
    everything = np.arange(len(data.clips))
    choice = choose_on_training(data, everything, c_grid, inner_folds, seed, max_overuse, target_precision)
    head = fit_genres(data.subset(everything), data.genres, choice.c)
    return head.shifted(choice.thresholds), choice


# ----- scoring -----


def old_default(data: Dataset) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The old default's written genre per clip (as vocabulary genres) and its confidence."""
    top = data.old.argmax(axis=1)
    return [OLD_TO_GENRES[OLD_LABELS[i]] for i in top], data.old.max(axis=1)


def summarise(data: Dataset, result: CVResult) -> dict[str, Any]:
    genres = data.genres
    clips = data.clips
    old_names, old_conf = old_default(data)
    old_written = old_conf >= OLD_MIN_CONFIDENCE
    allmusic_mask = np.array([c.dataset == "allmusic-4q" for c in clips])
    old_right = np.array([any(correct(g, c) for g in names) for names, c in zip(old_names, clips, strict=True)])

    fold_rows: dict[str, list[dict[str, float]]] = {"new": [], "new_first": [], "old_first": []}
    per_genre_folds: dict[str, dict[str, list[dict[str, float]]]] = {k: {g: [] for g in genres} for k in fold_rows}
    first_rows = []
    for margins, abstain, tests in zip(result.margins, result.abstain, result.folds, strict=True):
        names, top = first_genre(margins, genres)
        written = top >= np.maximum(abstain, 0.5)
        right = np.array([correct(g, c) for g, c in zip(names, clips, strict=True)])
        for test_all in tests:
            for subset, test in (("", test_all), ("_allmusic", test_all[allmusic_mask[test_all]])):
                if not len(test):
                    continue
                new_p = float(right[test][written[test]].mean()) if written[test].any() else float("nan")
                old_p = float(old_right[test][old_written[test]].mean()) if old_written[test].any() else float("nan")
                first_rows.append(
                    {f"new_precision{subset}": new_p, f"new_coverage{subset}": float(written[test].mean()),
                     f"old_precision{subset}": old_p, f"old_coverage{subset}": float(old_written[test].mean())}
                )  # fmt: skip
            test = test_all
            labels = data.labels[test]
            for j, g in enumerate(genres):
                multi = margins[test, j] >= 0.5
                first = np.array([n == g for n in np.array(names)[test]]) & written[test]
                old_first = np.array([names_ == (g,) for names_ in [old_names[i] for i in test]]) & old_written[test]
                per_genre_folds["new"][g].append(per_genre(multi, labels[:, j]))
                per_genre_folds["new_first"][g].append(per_genre(first, labels[:, j]))
                per_genre_folds["old_first"][g].append(per_genre(old_first, labels[:, j]))

    def spread(rows: list[dict[str, float]], key: str) -> dict[str, float]:
        values = np.array([r[key] for r in rows if key in r], dtype=float)
        return {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}

    table: dict[str, Any] = {}
    for kind, by_genre in per_genre_folds.items():
        rows = {}
        for g in genres:
            fr = by_genre[g]
            rows[g] = {k: spread(fr, k) for k in ("precision", "recall", "f1")} | {
                "support": int(sum(r["support"] for r in fr)),
                "written": int(sum(r["written"] for r in fr)),
            }
        macro_folds = []
        for f in range(len(by_genre[genres[0]])):
            macro_folds.append(float(np.nanmean([by_genre[g][f]["f1"] for g in genres])))
        table[kind] = {
            "per_genre": rows,
            "macro_f1": {"mean": float(np.mean(macro_folds)), "std": float(np.std(macro_folds))},
        }

    # Pooled curve (all repeats): precision of the first genre vs coverage as the abstain cut-off moves.
    curves = [precision_coverage(m, clips, genres, ABSTAIN_GRID) for m in result.margins]
    curve = [
        {"cutoff": float(t), "precision": float(np.nanmean([c[i][1] for c in curves])),
         "coverage": float(np.mean([c[i][2] for c in curves]))}
        for i, t in enumerate(ABSTAIN_GRID)
    ]  # fmt: skip
    # The same on AllMusic clips only: the old default was fit on the GTZAN clips, not on these.
    am_clips = [c for c, keep in zip(clips, allmusic_mask, strict=True) if keep]
    am_curves = [precision_coverage(m[allmusic_mask], am_clips, genres, ABSTAIN_GRID) for m in result.margins]
    curve_allmusic = [
        {"cutoff": float(t), "precision": float(np.nanmean([c[i][1] for c in am_curves])),
         "coverage": float(np.mean([c[i][2] for c in am_curves]))}
        for i, t in enumerate(ABSTAIN_GRID)
    ]  # fmt: skip
    old_curve: list[dict[str, float]] = []
    old_curve_allmusic: list[dict[str, float]] = []
    for t in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        for rows_, mask in ((old_curve, np.ones(len(clips), bool)), (old_curve_allmusic, allmusic_mask)):
            w = (old_conf >= t) & mask
            rows_.append({"cutoff": t, "precision": float(old_right[w].mean()) if w.any() else float("nan"),
                          "coverage": float(w.sum() / mask.sum())})  # fmt: skip

    # Over-use at the operating point: tracks with the genre written first / tracks that have it.
    overuse: dict[str, Any] = {}
    for kind in ("new_first", "old_first"):
        rows = table[kind]["per_genre"]
        overuse[kind] = {g: (rows[g]["written"] / rows[g]["support"]) if rows[g]["support"] else None for g in genres}
    return {
        "tables": table,
        "first_genre": {k: spread(first_rows, k) for k in {k for r in first_rows for k in r}},
        "curve": curve,
        "old_curve": old_curve,
        "curve_allmusic": curve_allmusic,
        "old_curve_allmusic": old_curve_allmusic,
        "overuse": overuse,
        "album": pseudo_album_gain(data, result),
        "choices": result.choices,
    }


def pseudo_album_gain(data: Dataset, result: CVResult) -> dict[str, Any]:
    """Album consensus measured on pseudo-albums: an AllMusic artist's clips (2 or more) as one album.

    Folds are grouped by artist, so a pseudo-album is always held out whole. Each member's
    held-out scores are replaced by the album mean (:func:`tagger.album.album_probabilities`),
    and the first genre is written under the fold's own abstain cut-off, as without consensus.
    """
    clips = data.clips
    members: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        if c.dataset == "allmusic-4q":
            members.setdefault(c.group, []).append(i)
    albums = {g: m for g, m in members.items() if len(m) >= 2}
    on_album = np.zeros(len(clips), bool)
    for m in albums.values():
        on_album[m] = True
    rows: dict[str, list[float]] = {k: [] for k in ("track_precision", "track_coverage", "album_precision",
                                                    "album_coverage", "track_split", "album_split")}  # fmt: skip
    for margins, abstain in zip(result.margins, result.abstain, strict=True):
        merged = margins.copy()
        for group, m in albums.items():
            tracks = [AlbumTrack(folder=group, name=f"{k + 1:02d}", probabilities=margins[i]) for k, i in enumerate(m)]
            for i, p in zip(m, album_probabilities(tracks), strict=True):
                merged[i] = p
        for kind, scores in (("track", margins), ("album", merged)):
            names, top = first_genre(scores[on_album], data.genres)
            written = top >= np.maximum(abstain[on_album], 0.5)
            right = np.array([correct(g, clips[i]) for g, i in zip(names, np.flatnonzero(on_album), strict=True)])
            rows[f"{kind}_precision"].append(float(right[written].mean()) if written.any() else float("nan"))
            rows[f"{kind}_coverage"].append(float(written.mean()))
            # Albums whose written first genres disagree (what an album page shows as broken).
            shown = [n if w else None for n, w in zip(names, written, strict=True)]
            first = dict(zip(np.flatnonzero(on_album).tolist(), shown, strict=True))
            split = [len({first[i] for i in m if first[i] is not None}) > 1 for m in albums.values()]
            rows[f"{kind}_split"].append(float(np.mean(split)))
    return {
        "albums": len(albums),
        "tracks": int(on_album.sum()),
        **{k: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v))} for k, v in rows.items()},
    }
