"""Teach the tagger a vocabulary from half-tagged real music, and compare it with the model's own.

    .venv/bin/python examples/gtzan_learn.py [--model NAME_OR_CARD] [--dataset DIR] [--keep DIR]
                                             [--layout albums|flat] [--artist blocks|none]

1. copies the GTZAN sample (``<genre>/<genre>.000NN.opus``) to a temporary library, in album-like
   folders of 5 consecutive clips (GTZAN lists one artist's clips next to each other, so a folder
   stands in for an album: grouped cross-validation keeps them on one side of every split), or
   with ``--layout flat`` all in one folder (downloads, DJ folders);
2. writes each clip's genre as a tag on every other clip of each genre (the "owner's tags"), and
   with ``--artist blocks`` (the default) an artist tag naming its block of 5 consecutive clips
   (a stand-in: GTZAN has no artist list here); ``--artist none`` leaves grouping to the folder;
3. ``tagger scan`` with the model's own vocabulary, then ``tagger learn``, then
   ``tagger scan --vocabulary mine`` (which decodes nothing: it re-tags from stored embeddings);
4. prints, per genre, the learned head's grouped-CV figures on the tagged half beside the model's
   own vocabulary's figures on the same tracks, and both vocabularies' accuracy on the untagged
   half (never seen by ``learn``).

Figures from 181 clips of an artist-heavy sample say little about a real library; a model that
was trained on these very clips (its card's training data) makes its own vocabulary's figures
and its embedding look better than they are. The script prints what the model card says.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: tagger from this checkout
    sys.path.insert(0, str(REPO))

import mutagen  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import select  # noqa: E402

from tagger.genres import genre_key  # noqa: E402
from tagger.learn import learn_vocabulary, save_vocabulary  # noqa: E402
from tagger.model import ModelCard, load_card  # noqa: E402
from tagger.record import Library, TagOptions  # noqa: E402
from tagger.scan import Scanner, ScanSummary  # noqa: E402
from tagger.store import Database, Result, Track  # noqa: E402
from tagger.tags import open_tags  # noqa: E402
from tagger.vocabulary import vocabularies_dir  # noqa: E402

DATASET = Path(os.environ.get("GTZAN_SAMPLE", REPO.parent / "shared" / "datasets" / "gtzan-sample"))
ALBUM_SIZE = 5
SPELLING = {"hiphop": "Hip-Hop"}  # how the "owner" writes it; learn maps it back to the key hiphop

console = Console(width=120)


def build_library(dataset: Path, root: Path, flat: bool, artist: bool) -> dict[Path, tuple[str, bool]]:
    """Copy the clips into album folders (or one folder); tag every other clip per genre. path -> (genre, tagged)."""
    clips: dict[Path, tuple[str, bool]] = {}
    for genre_dir in sorted(p for p in dataset.iterdir() if p.is_dir()):
        genre = genre_dir.name
        for position, source in enumerate(sorted(genre_dir.glob(f"{genre}.*.*"))):
            index = int(source.name.split(".")[1])
            block = f"{genre} {index // ALBUM_SIZE * ALBUM_SIZE:05d}"
            album = root if flat else root / genre / block
            album.mkdir(parents=True, exist_ok=True)
            target = album / source.name
            shutil.copyfile(source, target)
            tagged = position % 2 == 0
            if tagged:
                if artist:
                    audio = mutagen.File(target)
                    audio["ARTIST"] = [f"GTZAN {block}"]
                    audio.save()
                open_tags(target).write_genres([SPELLING.get(genre, genre.title())])
            clips[target] = (genre, tagged)
    return clips


def scan(
    database: Database, card: ModelCard, root: Path, vocabulary: str | None, workers: int, write: bool = True
) -> ScanSummary:
    summary = ScanSummary()
    # write=False: no confidence reaches 2, so every track is recorded (with its embedding) and none is tagged
    library = Library(database, card, TagOptions(vocabulary=vocabulary, min_confidence=0.0 if write else 2.0))
    with Scanner(library, workers=workers) as scanner:
        for report in scanner.scan([root]):
            summary.add(report)
    return summary


def latest_genres(database: Database, vocabulary: str) -> dict[str, tuple[str, list[str]]]:
    """path -> (top label, chosen genres) of each track's latest result under ``vocabulary``."""
    out: dict[str, tuple[str, list[str]]] = {}
    with database.session() as session:
        rows = session.execute(
            select(Track.path, Result.genres, Result.chosen)
            .join(Result, Result.track_id == Track.id)
            .where(Result.vocabulary == vocabulary)
            .order_by(Result.id)
        )
        for path, genres, chosen in rows:
            out[path] = (genres[0]["label"] if genres else "", list(chosen))
    return out


def prf(predicted: list[str], truth: list[str], label: str) -> tuple[float, float, float]:
    tp = sum(p == label and t == label for p, t in zip(predicted, truth, strict=True))
    fp = sum(p == label and t != label for p, t in zip(predicted, truth, strict=True))
    fn = sum(p != label and t == label for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="shipped model name or .json card [default: the shipped one]")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp dir)")
    parser.add_argument("--min-tracks", type=int, default=5, help="the sample has 10 clips per genre, 5 tagged")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--layout", choices=("albums", "flat"), default="albums")
    parser.add_argument(
        "--record-first", action="store_true", help="first scan writes no tag: only the learned vocabulary tags"
    )
    parser.add_argument("--artist", choices=("blocks", "none"), default="blocks", help="artist tags on tagged clips")
    args = parser.parse_args()

    card = load_card(args.model)
    if card.embedding_output is None:
        sys.exit(f"model {card.model_id} has no embedding output: nothing to learn from")
    default_head = card.heads[card.default_head]
    work = args.keep or Path(tempfile.mkdtemp(prefix="gtzan-learn-"))
    root, database = work / "music", Database(work / "state" / "tagger.db")
    console.print(f"model {card.model_id} (vocabulary {card.default_head}: {len(default_head.labels)} labels)")
    split = card.raw.get("split") or {}
    if split.get("final_model_clips"):
        console.print(
            f"[yellow]caveat:[/] this model was trained on {split['final_model_clips']} clips of "
            f"{split.get('data_root', 'unknown data')}: if that is this sample, both vocabularies' figures are inflated"
        )

    started = time.perf_counter()
    clips = build_library(args.dataset, root, args.layout == "flat", args.artist == "blocks")
    owners = {p: p.read_bytes() for p, (_, t) in clips.items() if t}
    tagged = {str(p): g for p, (g, t) in clips.items() if t}
    untagged = {str(p): g for p, (g, t) in clips.items() if not t}
    console.print(f"{len(clips)} clips in {work}: {len(tagged)} tagged, {len(untagged)} untagged")

    first = scan(database, card, root, None, args.workers, write=not args.record_first)
    console.print(f"scan ({card.default_head}): {dict(first.counts)} in {time.perf_counter() - started:.0f} s")
    t = time.perf_counter()
    learned = learn_vocabulary(database, card, [root], min_tracks=args.min_tracks)
    console.print(
        f"learn ({args.layout}, artist {args.artist}): {learned.tracks} tracks, {learned.folders} folders, "
        f"{learned.groups} groups by {learned.grouping_text()}, {learned.folds} folds, {time.perf_counter() - t:.1f} s"
    )
    for f in learned.labels:
        if f.note:
            console.print(f"  {f.name}: {f.note}", highlight=False)
    if learned.head is None:
        sys.exit("nothing learned")
    save_vocabulary(learned, vocabularies_dir(database.url))
    t = time.perf_counter()
    second = scan(database, card, root, "mine", args.workers)
    console.print(f"scan --vocabulary mine: {dict(second.counts)} in {time.perf_counter() - t:.1f} s (no decoding)")

    builtin = latest_genres(database, card.default_head)
    mine = latest_genres(database, "mine")
    paths = sorted(tagged)
    truth = [genre_key(tagged[p]) for p in paths]
    builtin_predicted = [genre_key(builtin[p][0]) for p in paths]

    table = Table(title="per genre, tagged half: learned head (grouped CV) vs the model's own vocabulary")
    for column in ("genre", "tracks", "groups", "learned P", "R", "F1 ± sd", "kept", "built-in P", "R", "F1"):
        table.add_column(column, justify="left" if column == "genre" else "right")
    for f in learned.labels:
        p, r, f1 = prf(builtin_predicted, truth, f.label)
        learned_cells = (
            (f"{f.precision:.2f}", f"{f.recall:.2f}", f"{f.f1:.2f} ± {f.f1_spread:.2f}")
            if f.f1 is not None
            else ("-", "-", "-")
        )
        groups = "optimistic" if f.optimistic else f"{f.groups} {f.grouping}"
        table.add_row(
            f.name,
            str(f.tracks),
            groups,
            *learned_cells,
            "yes" if f.learned else "no",
            *(f"{v:.2f}" for v in (p, r, f1)),
        )
    console.print(table)
    learned_f1 = [f.f1 or 0.0 for f in learned.labels]
    builtin_f1 = [prf(builtin_predicted, truth, f.label)[2] for f in learned.labels]
    console.print(
        f"macro F1 over these {len(learned.labels)} genres: learned {sum(learned_f1) / len(learned_f1):.3f}, "
        f"built-in {sum(builtin_f1) / len(builtin_f1):.3f}"
    )

    held_out = sorted(untagged)
    right_builtin = sum(genre_key(builtin[p][0]) == genre_key(untagged[p]) for p in held_out)
    right_mine = sum(genre_key(mine[p][0]) == genre_key(untagged[p]) for p in held_out if p in mine)
    written = Counter(tuple(open_tags(p).read_genres()) for p in held_out)
    console.print(
        f"untagged half ({len(held_out)} clips, never seen by learn): top genre right: "
        f"learned {right_mine}/{len(held_out)} = {right_mine / len(held_out):.3f}, "
        f"built-in {right_builtin}/{len(held_out)} = {right_builtin / len(held_out):.3f}"
    )
    console.print(f"tags now on the untagged half: {dict(written.most_common())}")
    right_written = sum(
        [genre_key(g) for g in open_tags(p).read_genres()] == [genre_key(untagged[p])] for p in held_out
    )
    console.print(
        f"untagged half, the genre tag now in the file is right: {right_written}/{len(held_out)} = "
        f"{right_written / len(held_out):.3f}"
    )
    changed = [p for p, data in owners.items() if p.read_bytes() != data]
    console.print(f"owner's tagged files byte-identical: {len(owners) - len(changed)}/{len(owners)}")
    console.print(f"total {time.perf_counter() - started:.0f} s; work dir {work}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
