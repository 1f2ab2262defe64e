"""``tagger learn`` and ``tagger restore``: the owner's own vocabulary from the tags, and the genres put back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tagger.cli.options import ConfigOption, DbOption, ModelOption, command_settings, console, fail, stdout
from tagger.errors import TaggerError

if TYPE_CHECKING:
    from tagger.learn import Learned


def learn(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Only tracks under these folders", show_default="every scanned track")
    ] = None,
    vocabulary: Annotated[str, typer.Option("--vocabulary", help="Name to save it under")] = "mine",
    min_tracks: Annotated[int, typer.Option(min=2, help="Labels on fewer tracks are left out")] = 20,
    f1_floor: Annotated[float, typer.Option(min=0.0, max=1.0, help="Labels with a lower CV F1 are left out")] = 0.5,
    tag_field: Annotated[str, typer.Option("--field", help="Tag field the labels come from")] = "genre",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show per label what would be learned (figures, groups); save nothing")
    ] = False,
    db: DbOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Learn your own genre vocabulary from the genre tags already in your files (scan them first).

    Reads the database only: the embeddings of scanned tracks and the genres their owner tagged.
    Apply it with `tagger scan PATH --vocabulary NAME` (no audio is decoded again).
    """
    from tagger.learn import check_name, learn_vocabulary, save_vocabulary
    from tagger.model import load_card
    from tagger.store import Database
    from tagger.vocabulary import vocabularies_dir

    settings = command_settings(config, db=db, model=model)
    try:
        card = load_card(settings.model)
        check_name(vocabulary, card)
        database = Database(settings.db)
        learned = learn_vocabulary(
            database,
            card,
            paths or [],
            name=vocabulary,
            min_tracks=min_tracks,
            f1_floor=f1_floor,
            field=tag_field,
            rules=settings.genres,
        )
    except (TaggerError, ValueError) as error:
        raise fail(error) from error
    _print_learned(learned, as_json)
    if learned.head is None:
        why = (
            f"no scanned track with a genre tag has an embedding from {card.model_id}: `tagger scan` them first"
            if not learned.tracks
            else f"no label passed, grouped by {learned.grouping_text()} (tag more tracks, or lower "
            "--min-tracks/--f1-floor)"
        )
        console.print(f"[red]nothing learned:[/] {why}", highlight=False)
        raise typer.Exit(1)
    if dry_run:
        console.print("--dry-run: nothing saved")
        return
    path = save_vocabulary(learned, vocabularies_dir(database.url))
    roots = " ".join(map(str, paths or [])) or "PATH"
    console.print(f"saved {path}; apply it with: tagger scan {roots} --vocabulary {vocabulary}", highlight=False)


def _print_learned(learned: Learned, as_json: bool) -> None:
    """Per-label cross-validated figures, then the refused labels: shown before anything is saved."""
    if as_json:
        stdout.print_json(data=learned.to_summary())
        return
    stdout.print(
        f"{learned.tracks} tagged tracks in {learned.folders} folders ({learned.model_id} embeddings), "
        f"{learned.untagged} untagged; grouped {learned.folds}-fold cross-validation over {learned.groups} groups: "
        f"by {learned.grouping_text()}",
        highlight=False,
    )
    if learned.no_embedding:
        stdout.print(f"{learned.no_embedding} tagged tracks have no {learned.model_id} embedding: scan them first")
    table = Table(title=f"learned: {learned.name}")
    for column in ("genre", "tracks", "groups", "P", "R", "F1 ± sd", "threshold"):
        table.add_column(column, justify="left" if column in ("genre", "groups") else "right")
    for f in learned.learned:
        table.add_row(
            f.genre,
            str(f.tracks),
            "optimistic" if f.optimistic else f"{f.groups} {f.grouping}",  # one group: see its note
            f"{f.precision:.2f}",
            f"{f.recall:.2f}",
            f"{f.f1:.2f} ± {f.f1_spread:.2f}",
            f"{f.threshold:.2f}",
        )
    stdout.print(table)
    for f in learned.labels:
        if f.note and not f.refused:
            stdout.print(f"{f.genre}: {f.note}", highlight=False)
    refused = Table(title="refused")
    for column in ("genre", "tracks", "why"):
        refused.add_column(column, justify="right" if column == "tracks" else "left")
    for f in learned.refused:
        refused.add_row(f.genre, str(f.tracks), f.refused)
    if learned.refused:
        stdout.print(refused)


def restore(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Only under these paths", show_default="everything")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also where the genre (mood) was changed after our write")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Put back the genre and mood values recorded before this tool wrote them."""
    from tagger.restore import restore as restore_tracks
    from tagger.store import Database

    settings = command_settings(config, db=db)
    reports = restore_tracks(Database(settings.db), paths or [], force=force, dry_run=dry_run)
    for item in reports:
        if item.restored:
            verb = "would restore" if dry_run else "restored"
            put_back = "; ".join(
                ("mood: " if role.role == "mood" else "") + (", ".join(role.values) or f"(no {role.role})")
                for role in item.roles
                if role.restored
            )
            left = f" (left: {item.reason})" if item.reason else ""
            stdout.print(f"{verb} {item.path}: {put_back}{left}", highlight=False, markup=False)
        else:
            stdout.print(f"[yellow]left[/] {item.path}: {item.reason}", highlight=False)
    restored = sum(item.restored for item in reports)
    done = f"would restore {restored}" if dry_run else f"{restored} restored"
    stdout.print(f"{done}, {len(reports) - restored} left as they are")
