"""``tagger report``, ``tagger playlists`` and ``tagger similar``: what the database knows, printed or written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tagger.cli.options import (
    ConfigOption,
    DbOption,
    ModelOption,
    VocabularyOption,
    command_settings,
    console,
    fail,
    stdout,
)
from tagger.errors import TaggerError

if TYPE_CHECKING:
    import numpy as np

    from tagger.report import LibraryReport


def report(
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    vocabulary: VocabularyOption = None,
    low_confidence_below: Annotated[float, typer.Option(help="Tracks below this are listed")] = 0.5,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page with charts to FILE")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Genres and moods the files now contain (after the policy) and, apart, what the model proposed; confidences,
    weak and failed tracks; per folder."""
    from tagger.report import build_report
    from tagger.store import Database

    settings = command_settings(config, db=db)
    if output_format not in ("table", "json", "csv"):
        console.print(f"[red]error:[/] unknown format {output_format!r} (table, json, csv)")
        raise typer.Exit(2)
    if html is not None and not html.parent.is_dir():  # said before the database is read
        console.print(f"[red]error:[/] {html.parent}: no such folder", highlight=False)
        raise typer.Exit(2)
    result = build_report(Database(settings.db), vocabulary, low_confidence_below, settings.genres)
    if html is not None:
        from tagger.report_html import write_html

        try:
            write_html(result, html)
        except OSError as error:
            raise fail(OSError(f"{html}: {error.strerror}")) from error
        console.print(f"wrote {html}", highlight=False)
    if output_format == "json":
        stdout.print_json(data=result.to_dict())
        return
    if output_format == "csv":
        sys.stdout.write(result.to_csv())
        return
    stdout.print(
        f"{result.tracks} tracks: {result.classified} classified, {result.failed} failed, "
        f"{result.tag_failed} not tagged (tag error), {result.gone} gone"
    )
    in_files = Table(title=f"genres in the files now ({result.no_genre} with none)")
    for column in ("genre", "tracks", "share", "written by us"):
        in_files.add_column(column, justify="left" if column == "genre" else "right")
    for file_row in result.genres:
        in_files.add_row(file_row.genre, str(file_row.tracks), f"{file_row.share:.1%}", str(file_row.ours))
    stdout.print(in_files)
    table = Table(title="genres the model proposed")
    for column in ("genre", "tracks", "share", "mean confidence"):
        table.add_column(column, justify="left" if column == "genre" else "right")
    for row in result.proposed:
        table.add_row(row.genre, str(row.tracks), f"{row.share:.1%}", f"{row.mean_confidence:.2f}")
    stdout.print(table)
    if result.moods or result.proposed_moods or result.moods_uncertain:
        print_moods(result)
    if result.folders:
        folders = Table(title="by top-level folder")
        folders.add_column("folder")
        folders.add_column("genres")
        for folder, counts in result.folders.items():
            folders.add_row(folder, ", ".join(f"{g} {n}" for g, n in counts.items()))
        stdout.print(folders)
    for item in result.low_confidence:
        stdout.print(f"low confidence {item['confidence']:.2f} {item['genre']}: {item['path']}", highlight=False)
    for item in result.failures:
        stdout.print(f"[red]failed[/] {item['path']}: {item['reason']}", highlight=False)
    for item in result.tag_failures:
        stdout.print(f"[red]not tagged[/] {item['path']}: {item['reason']}", highlight=False)


def print_moods(result: LibraryReport) -> None:
    in_files = Table(title=f"moods in the files now ({result.no_mood} with none)")
    for column in ("mood", "tracks", "share", "written by us"):
        in_files.add_column(column, justify="left" if column == "mood" else "right")
    for file_row in result.moods:
        in_files.add_row(file_row.mood, str(file_row.tracks), f"{file_row.share:.1%}", str(file_row.ours))
    stdout.print(in_files)
    table = Table(title=f"moods the model proposed ({result.moods_uncertain} uncertain)")
    for column in ("mood", "tracks", "share", "mean confidence"):
        table.add_column(column, justify="left" if column == "mood" else "right")
    for row in result.proposed_moods:
        table.add_row(row.mood, str(row.tracks), f"{row.share:.1%}", f"{row.mean_confidence:.2f}")
    stdout.print(table)


def playlists(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the playlists", show_default="config playlists_dir")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="genre: a playlist per genre; album-genre: whole albums by their genre; mood: a playlist per mood",
            show_default="config, else genre",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(help="Leave out genres the model heard below this", show_default="config, else 0"),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON")] = False,
) -> None:
    """One .m3u8 per genre (or mood) of the classified tracks, paths relative to the playlist (media servers import
    them).

    Only playlists this tool made (marked by a #GENRE-TAGGER line) are rewritten or removed.
    """
    from tagger.playlists import PlaylistError, PlaylistKind, write_playlists
    from tagger.store import Database

    changes = {"by": by, "min_confidence": min_confidence}
    settings = command_settings(config, db=db, playlists_dir=str(out) if out else None, tables={"playlists": changes})
    if settings.playlists_dir is None:
        console.print("[red]error:[/] no --out given and no playlists_dir in the config")
        raise typer.Exit(2)
    options = settings.playlists
    try:
        done = write_playlists(
            Database(settings.db),
            settings.playlists_dir,
            PlaylistKind(options.by),
            options.min_confidence,
            settings.genres,
        )
    except PlaylistError as error:
        raise fail(error) from error
    if as_json:
        stdout.print_json(data=done.to_dict())
        return
    for path in done.refused:
        console.print(f"[yellow]left alone[/] {path}: not made by tagger playlists --by {options.by}", highlight=False)
    stdout.print(
        f"{len(done.written)} written, {len(done.unchanged)} unchanged, {len(done.removed)} removed "
        f"({done.tracks} tracks) in {done.folder}",
        highlight=False,
    )


def similar(
    file: Annotated[Path, typer.Argument(help="A track (scanned, or classified now; nothing is written)")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many tracks")] = 30,
    m3u: Annotated[Path | None, typer.Option("--m3u", help="Also write them as this .m3u8 playlist")] = None,
    one_per: Annotated[str | None, typer.Option("--one-per", help="album or artist: at most one track of each")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Windows classified for a FILE never scanned")] = None,
    db: DbOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON")] = False,
) -> None:
    """The tracks that sound most like FILE: cosine similarity of the stored embeddings."""
    from tagger.model import Classifier, load_card
    from tagger.pipeline import analyse_track
    from tagger.similar import EmbeddingIndex, OnePer, similar_to
    from tagger.store import Database
    from tagger.walk import canonical_path

    settings = command_settings(config, db=db, model=model, max_windows=max_windows)
    if one_per is not None and one_per not in set(OnePer):
        console.print(f"[red]error:[/] --one-per: expected album or artist, got {one_per!r}", highlight=False)
        raise typer.Exit(2)
    if not file.is_file():
        console.print(f"[red]error:[/] {file}: no such file", highlight=False)
        raise typer.Exit(1)
    try:
        card = load_card(settings.model)
        index = EmbeddingIndex.load(Database(settings.db), card.model_id)
        if not len(index):
            raise fail(ValueError(f"no stored embeddings from {card.model_id}: `tagger scan` the library first"))

        def embed(path: Path) -> np.ndarray | None:
            return analyse_track(path, Classifier(card, threads=settings.threads), settings.max_windows).embedding

        found = similar_to(index, canonical_path(file), n, OnePer(one_per) if one_per else None, embed)
    except (TaggerError, ValueError, LookupError) as error:
        raise fail(error) from error
    if m3u is not None:
        try:
            found.write_m3u(canonical_path(m3u), f"Like {file.stem}")
        except OSError as error:
            raise fail(ValueError(f"{m3u}: {error.strerror or error}")) from error
    if as_json:
        stdout.print_json(data=found.to_dict())
        return
    origin = "stored" if found.scanned else "classified now"
    stdout.print(f"like {found.query} ({origin}; {found.tracks} tracks of {found.model_id} searched)", highlight=False)
    for rank, neighbour in enumerate(found.neighbours, 1):
        stdout.print(f"{rank:>3}  {neighbour.similarity:.3f}  {neighbour.path}", markup=False, highlight=False)
