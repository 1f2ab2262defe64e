"""``tagger classify FILE``: one track's genres, moods and timeline, printed; nothing is written (but --plot's PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tagger.cli.options import (
    AllowOption,
    ConfigOption,
    DbOption,
    IgnoreOption,
    ModelOption,
    VocabularyOption,
    command_settings,
    console,
    fail,
    stdout,
)
from tagger.errors import TaggerError

if TYPE_CHECKING:
    from tagger.classify import TrackMoods


def classify(
    file: Annotated[Path, typer.Argument(help="One audio file (it is not modified)")],
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    db: DbOption = None,
    top_k: Annotated[int, typer.Option(help="Genres listed")] = 5,
    max_windows: Annotated[int | None, typer.Option(help="Windows classified, spread over the track")] = None,
    allow: AllowOption = None,
    ignore: IgnoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the window timeline into this PNG (the [plot] extra)")
    ] = None,
    moods: Annotated[bool, typer.Option("--moods/--no-moods", help="Show the moods (models with a mood head)")] = True,
) -> None:
    """Genres of one track with confidences, its moods and the per-window timeline. Touches nothing (but --plot's
    PNG)."""
    from tagger.classify import classify_file

    settings = command_settings(
        config, allow, ignore, db=db, model=model, vocabulary=vocabulary, max_windows=max_windows
    )
    if not file.exists():  # said before the model is loaded, and without the decoders' own wording
        console.print(f"[red]error:[/] {file}: no such file", highlight=False)
        raise typer.Exit(1)
    try:
        if plot is not None:  # said before the model is loaded
            from tagger.plot import check_target

            check_target(plot)
        result = classify_file(file, settings, top_k, moods)
        if plot is not None:
            result.plot(plot)
    except (TaggerError, ValueError) as error:
        raise fail(error) from error
    if plot is not None:
        console.print(f"wrote {plot}", highlight=False)
    if as_json:
        stdout.print_json(data=result.to_dict())
        return
    head, analysis = result.vocabulary.head, result.analysis
    windows_note = f"{len(analysis.window_starts)} windows"
    table = Table(title=f"{file.name} ({analysis.duration:.1f} s, {windows_note}, {result.card.model_id}/{head.name})")
    table.add_column("genre")
    table.add_column("confidence", justify="right")
    for score in result.ranked:
        table.add_row(score.genre, f"{score.confidence:.3f}")
    stdout.print(table)
    stdout.print(f"would write: {', '.join(result.chosen) or '(nothing: below threshold)'}")
    if result.moods is not None:
        print_moods(result.moods, result.card.model_id)
    timeline = Table(title="timeline")
    timeline.add_column("start", justify="right")
    timeline.add_column("genre")
    timeline.add_column("p", justify="right")
    for window in result.timeline:
        timeline.add_row(f"{window.start:7.1f} s", window.genre, f"{window.confidence:.2f}")
    stdout.print(timeline)


def print_moods(found: TrackMoods, model_id: str) -> None:
    mood_table = Table(title=f"moods ({model_id}/{found.vocabulary.head.name})")
    mood_table.add_column("mood")
    mood_table.add_column("confidence", justify="right")
    for score in found.ranked:
        mood_table.add_row(score.genre, f"{score.confidence:.3f}")
    stdout.print(mood_table)
    top = found.decision.top
    uncertain = f"(nothing: uncertain, the head abstains; top {top.genre} {top.confidence:.2f})"
    stdout.print(f"would write mood: {', '.join(found.decision.chosen) or uncertain}", highlight=False)
    if (plane := found.axes) is not None:
        stdout.print(f"valence {plane.valence:+.2f}, arousal {plane.arousal:+.2f}", highlight=False)
