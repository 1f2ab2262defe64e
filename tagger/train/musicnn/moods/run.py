"""``tagger-train moods``: the ``moods`` head of the shipped card, its artist-grouped figures, and ``--ship``.

Reads AllMusic-4Q (``metadata.csv``: quadrant and AllMusic mood words per clip), takes every clip's
window outputs from the genres room's cache (:func:`tagger.train.musicnn.genres.run.outputs_for`: the
card's ``max_windows`` spread windows a default scan reads), cross-validates the head by artist
(:mod:`tagger.train.musicnn.moods.cv`), fits the shipped head on every clip, checks on real clips that
the runtime (:class:`tagger.model.Classifier` + :func:`tagger.pipeline.analyse_track`) scores them as
the trainer does, and writes ``moods.json`` and ``report.md``; with ``--ship``, the head into the card.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tagger.aggregate import aggregate
from tagger.model import Classifier, ModelCard, card_path_for
from tagger.moods import QUADRANTS
from tagger.pipeline import analyse_track
from tagger.train.card import card_text
from tagger.train.musicnn.genres.outputs import WindowSet
from tagger.train.musicnn.genres.run import GenreOptions, outputs_for
from tagger.train.musicnn.moods.cv import (
    MoodData,
    build_data,
    choose_on_training,
    clip_scores,
    cross_validate,
    fit_moods,
    head_dict,
    summarise,
)
from tagger.train.musicnn.moods.labels import NAME_EVIDENCE, TAG_NAMES, mood_clips, mood_words

LICENCE = (
    "Mood head fit on AllMusic-4Q previews and their annotators' quadrants (Panda, Malheiro & Paiva 2018; "
    "commercial recordings, research use): treat the head as for research and personal use. Backbone: "
    "MSD_musicnn (ISC, see NOTICE)."
)
REPRODUCE = "tagger-train moods --allmusic ../shared/datasets/allmusic-4q --out runs/moods --ship"
PUBLISHED = (
    "about 76% F1 over the four quadrants (Panda, Malheiro & Paiva 2018): hand-crafted emotion features selected "
    "on the same data, SVM, all 900 clips at their original quality, random (not artist-grouped) folds"
)
SHIPPED_KEYS = ("mood_head", "heads.moods", "metrics.moods", "reproduce_moods", "licence_moods")


@dataclass
class MoodOptions:
    allmusic: Path
    out: Path
    cache_dir: Path
    model: str = "musicnn"
    window_set: WindowSet = "spread"  # the card's max_windows spread windows: what a default scan reads
    folds: int = 5
    repeats: int = 3
    c_grid: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)
    inner_folds: int = 3
    target_precision: float = 0.8
    seed: int = 0
    parity_clips: int = 8  # real clips run through the runtime to check it scores them as the trainer does
    ship: bool = False
    # CV only: folds by clip, so an artist's clips fall on both sides (the published figure's protocol)
    random_folds: bool = False
    log: Callable[[str], None] = lambda _: None


def load_data(options: MoodOptions) -> tuple[MoodData, int]:
    """The clips' outputs and quadrants, and how many artists they have."""
    clips = mood_clips(options.allmusic)
    artists = len({c.clip.group for c in clips})
    if options.random_folds:
        clips = [replace(c, clip=replace(c.clip, group=f"clip:{c.clip.path.name}")) for c in clips]
    # The genres room's reader of the cached outputs needs only its cache, model and log fields.
    genre_options = GenreOptions(
        allmusic=options.allmusic, gtzan=options.allmusic, out=options.out, cache_dir=options.cache_dir,
        model=options.model, log=options.log,
    )  # fmt: skip
    return build_data(clips, outputs_for([c.clip for c in clips], genre_options, (options.window_set,))), artists


def run(options: MoodOptions) -> dict[str, Any]:
    if options.ship and options.random_folds:
        raise ValueError(
            "a head chosen on random folds is not shipped: its figures would not be the artist-grouped ones"
        )
    started = time.perf_counter()
    data, artists = load_data(options)
    groups = len(set(data.groups))
    options.log(f"{len(data.clips)} clips, {len(data.clip)} windows, {artists} artists, {groups} fold groups")
    result = cross_validate(
        data, options.folds, options.repeats, options.c_grid, options.inner_folds, options.target_precision,
        options.seed, options.log,
    )  # fmt: skip
    everything = np.arange(len(data.clips))
    choice = choose_on_training(
        data, everything, options.c_grid, options.inner_folds, options.seed, options.target_precision
    )
    head = head_dict(fit_moods(data, everything, choice.c, options.seed), choice.abstain)
    split = "random (by clip)" if options.random_folds else "artist-grouped"
    metrics: dict[str, Any] = {
        "protocol": (
            f"{split} {options.folds}-fold CV x {options.repeats} repeats over all {len(data.clips)} AllMusic-4Q "
            f"clips ({artists} artists); C (grid {list(options.c_grid)}, best inner quadrant macro F1) and the "
            "abstain cut-off (the lowest top score whose inner precision of the written mood reaches "
            f"{options.target_precision}) chosen by an inner {options.inner_folds}-fold {split} CV on the training "
            "folds only, then scored on the held-out fold; a track's scores are the mean of its "
            f"{options.window_set} windows' softmax scores (the card's max_windows, as a default scan)"
        ),
        "data": {
            "clips": len(data.clips),
            "artists": artists,
            "windows": len(data.clip),
            "window_set": options.window_set,
            "per_quadrant": {q: int(np.sum(data.labels == i)) for i, q in enumerate(QUADRANTS)},
        },
        "published": PUBLISHED,
        "names": {"tag_names": TAG_NAMES, "why": NAME_EVIDENCE, "allmusic_words": mood_words(data.clips)},
        "shipped_head": {
            "C": choice.c,
            "abstain_below": choice.abstain,
            "inner_macro_f1": choice.inner_macro_f1,
            "inner_macro_f1_by_C": choice.inner_by_c,
        },
        "cv": summarise(data, result),
    }
    card = with_moods(json.loads(card_path_for(options.model).read_text()), head, metrics)
    if options.parity_clips:
        sample = parity_sample(data, options.parity_clips)
        metrics["parity"] = parity(card, card_path_for(options.model), data, sample)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "moods.json").write_text(json.dumps({"head": head, "metrics": metrics}, indent=1))
    (options.out / "report.md").write_text(report(metrics))
    if options.ship:
        ship(card_path_for(options.model), head, metrics)
    return {"head": head, "metrics": metrics}


def with_moods(card: dict[str, Any], head: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """``card`` with the mood head and its documentation added (or replaced); nothing else changes."""
    card["mood_head"] = "moods"
    card["heads"]["moods"] = head
    card.setdefault("metrics", {})["moods"] = metrics
    card["reproduce_moods"] = REPRODUCE
    card["licence_moods"] = LICENCE
    return card


def ship(path: Path, head: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write the mood head into the card at ``path``; the model file is not touched, and the card must load."""
    card = with_moods(json.loads(path.read_text()), head, metrics)
    path.write_text(card_text(card))
    ModelCard.load(path)


# ----- parity: the runtime on real clips against the trainer's scores -----


def parity_sample(data: MoodData, count: int) -> list[int]:
    """The first ``count / 4`` clips of each quadrant (in metadata order): real clips of every mood."""
    per = max(1, count // len(QUADRANTS))
    return [int(i) for q in range(len(QUADRANTS)) for i in np.flatnonzero(data.labels == q)[:per]]


def parity(card: dict[str, Any], card_path: Path, data: MoodData, sample: Sequence[int]) -> dict[str, Any]:
    """Each sampled clip scored by the runtime with ``card`` (decode, windows, graph, the linear softmax head,
    :func:`tagger.aggregate.aggregate`) against the trainer's scores from the cached outputs."""
    draft = dict(card, model_file=str((card_path.parent / card["model_file"]).resolve()))
    with tempfile.TemporaryDirectory(prefix="moods-parity-") as scratch:
        path = Path(scratch) / "card.json"
        path.write_text(json.dumps(draft))
        loaded = ModelCard.load(path)
    head = loaded.heads["moods"]
    classifier = Classifier(loaded, threads=1)
    indices = np.asarray(sample)
    trainer = clip_scores(head, data, indices)
    runtime, windows_match = [], []
    for index in indices:
        analysis = analyse_track(data.clips[index].clip.path, classifier)
        scored = aggregate(analysis.probabilities["moods"], head, top_k=len(QUADRANTS))
        by_label = {s.label: s.confidence for s in scored.ranked}
        runtime.append([by_label[q] for q in QUADRANTS])
        windows_match.append(len(analysis.window_starts) == int(np.sum(data.clip == index)))
    difference = np.abs(np.array(runtime) - trainer)
    return {
        "clips": [str(data.clips[i].clip.path.name) for i in indices],
        "max_abs_difference": float(difference.max()),
        "same_top_quadrant": int(np.sum(np.argmax(runtime, axis=1) == trainer.argmax(axis=1))),
        "same_window_count": int(sum(windows_match)),
        "runtime_scores": np.round(runtime, 5).tolist(),
        "trainer_scores": np.round(trainer, 5).tolist(),
    }


# ----- report -----


def _pm(cell: dict[str, float]) -> str:
    return "–" if not np.isfinite(cell["mean"]) else f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def report(metrics: dict[str, Any]) -> str:
    cv = metrics["cv"]
    lines = ["# moods head: artist-grouped CV", "", metrics["protocol"] + ".", ""]
    lines += [
        f"Quadrant macro F1 **{_pm(cv['macro_f1'])}**, accuracy {_pm(cv['accuracy'])} (mean ± std over folds); "
        f"valence sign right {_pm(cv['sign_accuracy']['valence'])}, "
        f"arousal sign {_pm(cv['sign_accuracy']['arousal'])}. "
        f"Published: {metrics['published']}.",
        "",
        "| quadrant | mood | clips | precision | recall | F1 |",
        "|---|---|---|---|---|---|",
    ]
    for q, row in cv["per_quadrant"].items():
        lines.append(
            f"| {q} | {row['name']} | {row['support']} | {_pm(row['precision'])} | {_pm(row['recall'])} | "
            f"{_pm(row['f1'])} |"
        )
    confusion = cv["confusion"]
    lines += ["", f"Confusion (rows: true, columns: predicted; {confusion['note']}):", ""]
    lines += ["| | " + " | ".join(QUADRANTS) + " |", "|---" * (len(QUADRANTS) + 1) + "|"]
    for q, counts in zip(QUADRANTS, confusion["counts"], strict=True):
        lines.append(f"| {q} | " + " | ".join(str(c) for c in counts) + " |")
    written = cv["written"]
    lines += [
        "",
        f"Written moods at the cut-off chosen inside each training fold (cut-off {_pm(written['cutoff'])}): "
        f"precision {_pm(written['precision'])}, coverage {_pm(written['coverage'])}. Shipped head: C="
        f"{metrics['shipped_head']['C']:g}, abstain_below {metrics['shipped_head']['abstain_below']:.2f}.",
        "",
        "Precision of the written mood vs coverage as the abstain cut-off moves (pooled held-out scores, mean over "
        "repeats):",
        "",
        "| cut-off | precision | coverage |",
        "|---|---|---|",
    ]
    for row in cv["curve"][::5]:
        lines.append(f"| {row['cutoff']:.2f} | {row['precision']:.3f} | {row['coverage']:.3f} |")
    lines += ["", "Names (AllMusic mood words per quadrant: clips, share of the word's clips in the quadrant):", ""]
    for q, words in metrics["names"]["allmusic_words"].items():
        shown = ", ".join(f"{w['word']} {w['clips']} ({w['share_in_quadrant']:.0%})" for w in words)
        lines.append(f"- {q} **{TAG_NAMES[q]}**: {shown}. {metrics['names']['why'][q]}.")
    if "parity" in metrics:
        p = metrics["parity"]
        lines += [
            "",
            f"Runtime parity on {len(p['clips'])} real clips (shipped card, `analyse_track`): max |difference| "
            f"{p['max_abs_difference']:.2e}, same top quadrant {p['same_top_quadrant']}/{len(p['clips'])}, same "
            f"window count {p['same_window_count']}/{len(p['clips'])}.",
        ]
    return "\n".join(lines) + "\n"
