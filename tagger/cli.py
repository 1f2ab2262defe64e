"""The ``tagger`` command: a thin typer layer over the library (parse, call, print)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tagger import __version__
from tagger.aggregate import aggregate
from tagger.config import ConfigError, Settings, load_settings
from tagger.errors import TaggerError
from tagger.library import Library, Outcome, TagOptions
from tagger.model import Classifier, load_card
from tagger.pipeline import analyse_track
from tagger.policy import Policy
from tagger.report import build_report
from tagger.restore import restore as restore_tracks
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database

app = typer.Typer(
    help="Listens to a music library and writes genre tags into the files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file [default: $TAGGER_DB or XDG data dir]")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Shipped model name, or path to a .json card / .tflite")
]
VocabularyOption = Annotated[
    str | None, typer.Option("--vocabulary", help="Which of the model's vocabularies to write")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML config file [default: XDG config dir]")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config).override(**overrides)
    except ConfigError as error:
        console.print(f"[red]config error:[/] {error}")
        raise typer.Exit(2) from error


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {error}")
    return typer.Exit(1)


@app.command()
def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders or files [default: roots from the config]")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show existing -> proposed; write nothing")] = False,
    policy: Annotated[Policy | None, typer.Option(help="keep: never replace the owner's genre")] = None,
    min_confidence: Annotated[float | None, typer.Option(help="Below this, record but do not tag")] = None,
    top_k: Annotated[int | None, typer.Option(help="Genres written per track at most")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Windows classified per track, spread over it")] = None,
    tag_low_confidence: Annotated[bool | None, typer.Option("--tag-low-confidence/--no-tag-low-confidence")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-classify tracks even if unchanged")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-read every write and report mismatches")] = False,
    db: DbOption = None,
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Tag every audio file under PATHS (one-shot); unchanged files are skipped on later runs."""
    settings = _settings(
        config,
        db=db,
        model=model,
        vocabulary=vocabulary,
        policy=policy,
        min_confidence=min_confidence,
        top_k=top_k,
        workers=workers,
        max_windows=max_windows,
        tag_low_confidence=tag_low_confidence,
    )
    roots = [str(p) for p in paths] if paths else list(settings.roots)
    if not roots:
        console.print("[red]error:[/] no PATH given and no roots in the config")
        raise typer.Exit(2)
    for root in roots:
        if not Path(root).exists():
            console.print(f"[red]error:[/] {root} does not exist")
            raise typer.Exit(2)
    try:
        library = open_library(settings, dry_run=dry_run, verify=verify)
    except (TaggerError, ValueError) as error:
        raise _fail(error) from error
    summary = ScanSummary()
    summary.recovered = 0 if dry_run else library.recover()
    scanner = Scanner(
        library,
        workers=settings.workers,
        threads=settings.threads,
        max_windows=settings.max_windows,
        follow_symlinks=settings.follow_symlinks,
        force=force,
    )
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json,
    )
    with scanner, progress:
        task = progress.add_task("listing", total=None)
        for report in scanner.scan(roots, on_planned=lambda n: progress.update(task, total=n, description="scanning")):
            summary.add(report)
            progress.advance(task)
            if report.outcome in (Outcome.TAGGED, Outcome.WOULD_TAG) and not as_json:
                arrow = f"{', '.join(report.existing) or '(none)'} -> {', '.join(report.proposed)}"
                progress.console.print(
                    f"{report.outcome.value:>9}  {report.path}  {arrow}", markup=False, highlight=False
                )
    _print_summary(summary, as_json)
    if summary.counts.get(Outcome.FAILED.value) and summary.counts.total() == summary.counts[Outcome.FAILED.value]:
        raise typer.Exit(1)


def open_library(settings: Settings, dry_run: bool = False, verify: bool = False) -> Library:
    card = load_card(settings.model)
    options = TagOptions(
        policy=settings.policy,
        min_confidence=settings.min_confidence,
        top_k=settings.top_k,
        dry_run=dry_run,
        tag_low_confidence=settings.tag_low_confidence,
        vocabulary=settings.vocabulary,
        id3_version=settings.id3_version,
        id3_separator=settings.id3_separator,
        verify=verify,
    )
    return Library(Database(settings.db), card, options)


def _print_summary(summary: ScanSummary, as_json: bool) -> None:
    if as_json:
        stdout.print_json(
            data={
                "counts": dict(summary.counts),
                "recovered": summary.recovered,
                "failures": [{"path": str(p), "reason": r} for p, r in summary.failures],
                "changes": [
                    {"path": str(c.path), "existing": c.existing, "proposed": c.proposed} for c in summary.changes
                ],
            }
        )
        return
    table = Table(title="scan summary", show_header=False)
    for outcome in Outcome:
        if summary.counts.get(outcome.value):
            table.add_row(outcome.value, str(summary.counts[outcome.value]))
    if summary.recovered:
        table.add_row("recovered", str(summary.recovered))
    stdout.print(table)
    for path, reason in summary.failures:
        stdout.print(f"[red]failed[/] {path}: {reason}", markup=True, highlight=False)


@app.command()
def classify(
    file: Annotated[Path, typer.Argument(help="One audio file (it is not modified)")],
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    top_k: Annotated[int, typer.Option(help="Genres listed")] = 5,
    max_windows: Annotated[int | None, typer.Option(help="Windows classified, spread over the track")] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Genres of one track with confidences, and the per-window timeline. Touches nothing."""
    settings = _settings(config, model=model, vocabulary=vocabulary, max_windows=max_windows)
    try:
        card = load_card(settings.model)
        analysis = analyse_track(file, Classifier(card, threads=settings.threads), settings.max_windows)
    except TaggerError as error:
        raise _fail(error) from error
    vocabulary_name = settings.vocabulary or card.default_head
    if vocabulary_name not in card.heads:
        raise _fail(ValueError(f"model {card.name!r} has no vocabulary {vocabulary_name!r}"))
    head = card.heads[vocabulary_name]
    genres = aggregate(analysis.probabilities[head.name], head, top_k=top_k, min_confidence=settings.min_confidence)
    windows = analysis.probabilities[head.name]
    if as_json:
        stdout.print_json(
            data={
                "path": str(file),
                "model": card.model_id,
                "vocabulary": head.name,
                "duration": analysis.duration,
                "genres": [
                    {"genre": s.genre, "label": s.label, "confidence": round(s.confidence, 4)} for s in genres.ranked
                ],
                "chosen": list(genres.chosen),
                "vocabularies": sorted(card.heads),
                "windows": [
                    {
                        "start": round(start, 2),
                        "genre": head.genre_name(head.labels[int(p.argmax())]),
                        "confidence": round(float(p.max()), 4),
                    }
                    for start, p in zip(analysis.window_starts, windows, strict=True)
                ],
            }
        )
        return
    table = Table(title=f"{file.name} ({analysis.duration:.1f} s, {len(windows)} windows, {card.model_id}/{head.name})")
    table.add_column("genre")
    table.add_column("confidence", justify="right")
    for score in genres.ranked:
        table.add_row(score.genre, f"{score.confidence:.3f}")
    stdout.print(table)
    stdout.print(f"would write: {', '.join(genres.chosen) or '(nothing: below threshold)'}")
    timeline = Table(title="timeline")
    timeline.add_column("start", justify="right")
    timeline.add_column("genre")
    timeline.add_column("p", justify="right")
    for start, probabilities in zip(analysis.window_starts, windows, strict=True):
        best = int(probabilities.argmax())
        timeline.add_row(f"{start:7.1f} s", head.genre_name(head.labels[best]), f"{probabilities[best]:.2f}")
    stdout.print(timeline)


@app.command()
def report(
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    vocabulary: VocabularyOption = None,
    low_confidence_below: Annotated[float, typer.Option(help="Tracks below this are listed")] = 0.5,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Genre distribution of the library: counts, share, mean confidence; weak and failed tracks; per folder."""
    settings = _settings(config, db=db)
    result = build_report(Database(settings.db), vocabulary, low_confidence_below)
    if output_format == "json":
        stdout.print_json(data=result.to_dict())
        return
    if output_format == "csv":
        sys.stdout.write(result.to_csv())
        return
    if output_format != "table":
        console.print(f"[red]error:[/] unknown format {output_format!r} (table, json, csv)")
        raise typer.Exit(2)
    stdout.print(f"{result.tracks} tracks: {result.classified} classified, {result.failed} failed, {result.gone} gone")
    table = Table(title="genres")
    for column in ("genre", "tracks", "share", "mean confidence"):
        table.add_column(column, justify="left" if column == "genre" else "right")
    for row in result.genres:
        table.add_row(row.genre, str(row.tracks), f"{row.share:.1%}", f"{row.mean_confidence:.2f}")
    stdout.print(table)
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


@app.command()
def restore(
    paths: Annotated[list[Path] | None, typer.Argument(help="Only under these paths [default: everything]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Also where the genre was changed after our write")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Put back the genre values recorded before this tool wrote them."""
    settings = _settings(config, db=db)
    reports = restore_tracks(Database(settings.db), paths or [], force=force, dry_run=dry_run)
    for item in reports:
        if item.restored:
            verb = "would restore" if dry_run else "restored"
            stdout.print(f"{verb} {item.path}: {', '.join(item.genres) or '(no genre)'}", highlight=False)
        else:
            stdout.print(f"[yellow]left[/] {item.path}: {item.reason}", highlight=False)
    restored = sum(item.restored for item in reports)
    stdout.print(f"{restored} restored, {len(reports) - restored} left as they are")


@app.command()
def version() -> None:
    """Print the version."""
    stdout.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
