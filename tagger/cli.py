"""The ``tagger`` command: a thin typer layer over the library (parse, call, print)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tagger import __version__
from tagger.config import ConfigError, Settings, database_url, load_settings
from tagger.errors import DatabaseError, ModelError, TaggerError
from tagger.policy import Policy

# Each command imports what it uses: `tagger classify` must start fast, without SQLAlchemy,
# scikit-learn or watchdog, and worker processes re-import this module.
if TYPE_CHECKING:
    import numpy as np

    from tagger.learn import Learned
    from tagger.record import Library
    from tagger.scan import ScanSummary
    from tagger.track import TrackReport

app = typer.Typer(
    help="Listens to a music library and writes genre tags into the files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)


def _or_config(name: str) -> str:
    """A flag's default in --help: the config's value, else the built-in one (typer shows "[default: (...)]";
    a "[default: ...]" written into the help text itself would be read as rich markup and vanish)."""
    defaults = Settings()
    value = getattr(defaults, name) if hasattr(defaults, name) else getattr(defaults.watch, name)
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"config, else {shown}"


DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file", show_default="$TAGGER_DB, else XDG data dir")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Shipped model name, or path to a .json card / .tflite")
]
VocabularyOption = Annotated[
    str | None,
    typer.Option("--vocabulary", help="Which vocabulary to write: one of the model's, or one made by `tagger learn`"),
]
# Options that scan and watch share.
PolicyOption = Annotated[
    Policy | None, typer.Option(help="keep: never replace the owner's genre", show_default=_or_config("policy"))
]
MinConfidenceOption = Annotated[
    float | None, typer.Option(help="Below this, record but do not tag", show_default=_or_config("min_confidence"))
]
TopKOption = Annotated[
    int | None, typer.Option(help="Genres written per track at most", show_default=_or_config("top_k"))
]
WorkersOption = Annotated[int | None, typer.Option(help="Worker processes", show_default=_or_config("workers"))]
MaxWindowsOption = Annotated[
    int | None,
    typer.Option(help="Windows classified per track, spread over it", show_default="config, else the model's"),
]
TagLowConfidenceOption = Annotated[
    bool | None,
    typer.Option("--tag-low-confidence/--no-tag-low-confidence", show_default=_or_config("tag_low_confidence")),
]
VerifyOption = Annotated[bool, typer.Option("--verify", help="Re-read every write and report mismatches")]
AllowOption = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Write only this genre (repeatable; replaces the config's genres.allow)"),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option("--ignore", help="Never write this genre (repeatable; replaces the config's genres.ignore)"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file", show_default="$TAGGER_CONFIG, else XDG config dir")
]


def _settings(
    config: Path | None, allow: list[str] | None = None, ignore: list[str] | None = None, **overrides: Any
) -> Settings:
    try:
        return load_settings(config).override(**overrides).with_genre_lists(allow, ignore)
    except ConfigError as error:
        console.print(f"[red]config error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from error


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)  # "[plot]" is text, not markup
    return typer.Exit(1)


@app.command()
def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders or files", show_default="roots from the config")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show existing -> proposed; write nothing")] = False,
    policy: PolicyOption = None,
    min_confidence: MinConfidenceOption = None,
    top_k: TopKOption = None,
    workers: WorkersOption = None,
    max_windows: MaxWindowsOption = None,
    tag_low_confidence: TagLowConfidenceOption = None,
    allow: AllowOption = None,
    ignore: IgnoreOption = None,
    force: Annotated[bool, typer.Option("--force", help="Re-classify tracks even if unchanged")] = False,
    album_mode: Annotated[
        str | None,
        typer.Option(
            help="consensus: the tracks of an album get the album's genre; track: each its own",
            show_default=_or_config("album_mode"),
        ),
    ] = None,
    verify: VerifyOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary and failures")] = False,
) -> None:
    """Tag every audio file under PATHS (one-shot); unchanged files are skipped on later runs.

    Output: a line per changed track and the summary go to stdout (`scan > log` keeps them all);
    the progress bar goes to stderr, and only when stderr is a terminal.
    """
    from tagger.scan import Scanner, ScanSummary
    from tagger.track import Outcome

    settings = _settings(
        config,
        allow,
        ignore,
        db=db,
        model=model,
        vocabulary=vocabulary,
        policy=policy,
        min_confidence=min_confidence,
        top_k=top_k,
        workers=workers,
        max_windows=max_windows,
        tag_low_confidence=tag_low_confidence,
        album_mode=album_mode,
    )
    roots, library = _roots_and_library(paths, settings, dry_run, verify, folders_only=False)
    summary = ScanSummary()
    summary.recovered = 0 if dry_run else library.recover()
    scanner = Scanner(
        library,
        workers=settings.workers,
        threads=settings.threads,
        max_windows=settings.max_windows,
        follow_symlinks=settings.follow_symlinks,
        force=force,
        album_mode=settings.album_mode,
    )
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[current]}", markup=False),
        console=console,
        transient=True,
        disable=as_json or quiet or not console.is_terminal,
        # On a terminal, stdout's lines are drawn above the bar; into a file or pipe they go straight there.
        redirect_stdout=stdout.is_terminal,
    )
    with scanner, progress:
        task = progress.add_task("listing", total=None, rate="", current="")

        def planned(n: int) -> None:  # the worker pool starts next: each worker loads the model (seconds)
            progress.update(task, total=n, description="loading model…")

        try:
            for report in scanner.scan(roots, on_planned=planned):
                summary.add(report)
                progress.advance(task)
                speed = progress.tasks[0].speed
                rate = f"{speed:.1f} tracks/s" if speed else ""
                progress.update(task, description="scanning", rate=rate, current=report.path.name)
                if report.outcome in (Outcome.TAGGED, Outcome.WOULD_TAG) and not (as_json or quiet):
                    stdout.print(_change_line(report), markup=False, highlight=False)
                if report.album_note and not (as_json or quiet):
                    stdout.print(f"{'album':>9}  {report.path}  {report.album_note}", markup=False, highlight=False)
        except ModelError as error:  # the workers could not load the model: nothing was classified
            raise _fail(error) from error
    _print_summary(summary, as_json)
    if summary.counts.get(Outcome.FAILED.value) and summary.counts.total() == summary.counts[Outcome.FAILED.value]:
        raise typer.Exit(1)


def _change_line(report: TrackReport) -> str:
    """``   tagged  PATH  (none) -> Jazz 0.91``: the confidence is the model's for its top genre."""
    arrow = f"{', '.join(report.existing) or '(none)'} -> {', '.join(report.proposed)}"
    confidence = f" {report.confidence:.2f}" if report.confidence is not None else ""
    return f"{report.outcome.value:>9}  {report.path}  {arrow}{confidence}"


def _roots_and_library(
    paths: list[Path] | None, settings: Settings, dry_run: bool, verify: bool, folders_only: bool
) -> tuple[list[str], Library]:
    """The roots (PATHS, else the config's), each checked, and the library they are tagged into; exits on error."""
    from tagger.model import load_card
    from tagger.record import Library, TagOptions
    from tagger.store import Database

    roots = [str(p) for p in paths] if paths else list(settings.roots)
    if not roots:
        console.print("[red]error:[/] no PATH given and no roots in the config")
        raise typer.Exit(2)
    for root in roots:
        if folders_only and not Path(root).is_dir():
            console.print(f"[red]error:[/] {root} is not a folder")
            raise typer.Exit(2)
        if not Path(root).exists():
            console.print(f"[red]error:[/] {root} does not exist")
            raise typer.Exit(2)
    try:
        options = TagOptions.from_settings(settings, dry_run=dry_run, verify=verify)
        return roots, Library(Database(settings.db), load_card(settings.model), options)
    except (TaggerError, ValueError) as error:
        raise _fail(error) from error


def _print_summary(summary: ScanSummary, as_json: bool) -> None:
    from tagger.track import Outcome

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
) -> None:
    """Genres of one track with confidences, and the per-window timeline. Touches nothing (but --plot's PNG)."""
    from tagger.aggregate import aggregate
    from tagger.model import Classifier, load_card
    from tagger.pipeline import analyse_track
    from tagger.vocabulary import available, resolve_vocabulary
    from tagger.walk import canonical_path

    settings = _settings(config, allow, ignore, db=db, model=model, vocabulary=vocabulary, max_windows=max_windows)
    if not file.exists():  # said before the model is loaded, and without the decoders' own wording
        console.print(f"[red]error:[/] {file}: no such file", highlight=False)
        raise typer.Exit(1)
    try:
        if plot is not None:  # said before the model is loaded
            _check_plot_target(plot)
        card = load_card(settings.model)
        chosen = resolve_vocabulary(card, settings.vocabulary, database_url(settings.db))
        analysis = analyse_track(file, Classifier(card, threads=settings.threads), settings.max_windows)
    except (TaggerError, ValueError) as error:
        raise _fail(error) from error
    head = chosen.head
    windows = chosen.window_probabilities(analysis)  # one row, no timeline, for a learned vocabulary
    genres = aggregate(windows, head, top_k, settings.min_confidence, settings.genres)
    written = aggregate(windows, head, settings.top_k, settings.min_confidence, settings.genres).chosen
    timeline_rows = list(zip(analysis.window_starts, windows, strict=True)) if chosen.needs_audio else []
    if plot is not None:
        from tagger.features import window_samples
        from tagger.plot import plot_timeline

        try:
            plot_timeline(
                analysis.window_starts if chosen.needs_audio else [],
                windows,
                [settings.genres.canonical(head.genre_name(label)) for label in head.labels],
                plot,
                title=f"{file.name} ({card.model_id}/{head.name})",
                window_seconds=window_samples(card.features) / card.features.sample_rate,
            )
        except TaggerError as error:
            raise _fail(error) from error
        console.print(f"wrote {plot}", highlight=False)
    if as_json:
        stdout.print_json(
            data={
                "path": str(canonical_path(file)),
                "model": card.model_id,
                "vocabulary": head.name,
                "duration": analysis.duration,
                "genres": [
                    {"genre": s.genre, "label": s.label, "confidence": round(s.confidence, 4)} for s in genres.ranked
                ],
                "chosen": list(written),
                "vocabularies": available(card, database_url(settings.db)),
                "windows": [
                    {
                        "start": round(start, 2),
                        "genre": head.genre_name(head.labels[int(p.argmax())]),
                        "confidence": round(float(p.max()), 4),
                    }
                    for start, p in timeline_rows
                ],
            }
        )
        return
    windows_note = f"{len(analysis.window_starts)} windows"
    table = Table(title=f"{file.name} ({analysis.duration:.1f} s, {windows_note}, {card.model_id}/{head.name})")
    table.add_column("genre")
    table.add_column("confidence", justify="right")
    for score in genres.ranked:
        table.add_row(score.genre, f"{score.confidence:.3f}")
    stdout.print(table)
    stdout.print(f"would write: {', '.join(written) or '(nothing: below threshold)'}")
    timeline = Table(title="timeline")
    timeline.add_column("start", justify="right")
    timeline.add_column("genre")
    timeline.add_column("p", justify="right")
    for start, probabilities in timeline_rows:
        best = int(probabilities.argmax())
        timeline.add_row(f"{start:7.1f} s", head.genre_name(head.labels[best]), f"{probabilities[best]:.2f}")
    stdout.print(timeline)


def _check_plot_target(plot: Path) -> None:
    from tagger.plot import PlotError, require_matplotlib

    require_matplotlib()
    if not plot.parent.is_dir():
        raise PlotError(f"{plot.parent}: no such folder")


@app.command()
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
    """Genres the files now contain (after the policy) and, apart, what the model proposed; confidences, weak and
    failed tracks; per folder."""
    from tagger.report import build_report
    from tagger.store import Database

    settings = _settings(config, db=db)
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
            raise _fail(OSError(f"{html}: {error.strerror}")) from error
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


@app.command()
def playlists(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the playlists", show_default="config playlists_dir")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="genre: a playlist per genre; album-genre: whole albums by their genre",
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
    """One .m3u8 per genre of the classified tracks, paths relative to the playlist (media servers import them).

    Only playlists this tool made (marked by a #GENRE-TAGGER line) are rewritten or removed.
    """
    from dataclasses import replace

    from tagger.playlists import PlaylistError, PlaylistKind, write_playlists
    from tagger.store import Database

    settings = _settings(config, db=db, playlists_dir=str(out) if out else None)
    changes: dict[str, Any] = {k: v for k, v in {"by": by, "min_confidence": min_confidence}.items() if v is not None}
    settings = _settings_with(settings, playlists=replace(settings.playlists, **changes))
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
        raise _fail(error) from error
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


def _settings_with(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with checked overrides; a bad value exits 2 with one line, as :func:`_settings` does."""
    try:
        return settings.override(**overrides)
    except ConfigError as error:
        console.print(f"[red]config error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from error


@app.command()
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

    settings = _settings(config, db=db, model=model, max_windows=max_windows)
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
            raise _fail(ValueError(f"no stored embeddings from {card.model_id}: `tagger scan` the library first"))

        def embed(path: Path) -> np.ndarray | None:
            return analyse_track(path, Classifier(card, threads=settings.threads), settings.max_windows).embedding

        found = similar_to(index, canonical_path(file), n, OnePer(one_per) if one_per else None, embed)
    except (TaggerError, ValueError, LookupError) as error:
        raise _fail(error) from error
    if m3u is not None:
        try:
            found.write_m3u(canonical_path(m3u), f"Like {file.stem}")
        except OSError as error:
            raise _fail(ValueError(f"{m3u}: {error.strerror or error}")) from error
    if as_json:
        stdout.print_json(data=found.to_dict())
        return
    origin = "stored" if found.scanned else "classified now"
    stdout.print(f"like {found.query} ({origin}; {found.tracks} tracks of {found.model_id} searched)", highlight=False)
    for rank, neighbour in enumerate(found.neighbours, 1):
        stdout.print(f"{rank:>3}  {neighbour.similarity:.3f}  {neighbour.path}", markup=False, highlight=False)


@app.command()
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

    settings = _settings(config, db=db, model=model)
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
        raise _fail(error) from error
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


@app.command()
def restore(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Only under these paths", show_default="everything")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Also where the genre was changed after our write")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Put back the genre values recorded before this tool wrote them."""
    from tagger.restore import restore as restore_tracks
    from tagger.store import Database

    settings = _settings(config, db=db)
    reports = restore_tracks(Database(settings.db), paths or [], force=force, dry_run=dry_run)
    for item in reports:
        if item.restored:
            verb = "would restore" if dry_run else "restored"
            stdout.print(f"{verb} {item.path}: {', '.join(item.genres) or '(no genre)'}", highlight=False)
        else:
            stdout.print(f"[yellow]left[/] {item.path}: {item.reason}", highlight=False)
    restored = sum(item.restored for item in reports)
    done = f"would restore {restored}" if dry_run else f"{restored} restored"
    stdout.print(f"{done}, {len(reports) - restored} left as they are")


@app.command()
def version() -> None:
    """Print the version."""
    stdout.print(__version__)


@app.command()
def watch(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders to watch", show_default="roots from the config")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Log existing -> proposed; write nothing")] = False,
    policy: PolicyOption = None,
    min_confidence: MinConfidenceOption = None,
    top_k: TopKOption = None,
    workers: WorkersOption = None,
    max_windows: MaxWindowsOption = None,
    tag_low_confidence: TagLowConfidenceOption = None,
    allow: AllowOption = None,
    ignore: IgnoreOption = None,
    force: Annotated[bool, typer.Option("--force", help="Re-classify every track in the start-up catch-up")] = False,
    verify: VerifyOption = False,
    quiet_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="A file must be unchanged this long before it is read",
            show_default=_or_config("quiet_seconds"),
        ),
    ] = None,
    polling: Annotated[
        bool | None,
        typer.Option(
            "--polling/--no-polling",
            help="Poll instead of inotify (network file systems)",
            show_default=_or_config("polling"),
        ),
    ] = None,
    reconcile_hours: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Full re-check every N hours, for dropped events (0: never)",
            show_default=_or_config("reconcile_hours"),
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every event and unchanged file")] = False,
    db: DbOption = None,
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    config: ConfigOption = None,
) -> None:
    """Watch PATHS and tag files as they arrive, change or move (a daemon: SIGTERM stops, SIGHUP reloads the config)."""
    from dataclasses import replace

    from tagger.config import load_settings
    from tagger.daemon import Daemon
    from tagger.daemon.playlists import PlaylistRefresher
    from tagger.systemd import configure_logging

    configure_logging(verbose)
    overrides: dict[str, Any] = {
        "db": db,
        "model": model,
        "vocabulary": vocabulary,
        "policy": policy,
        "min_confidence": min_confidence,
        "top_k": top_k,
        "workers": workers,
        "max_windows": max_windows,
        "tag_low_confidence": tag_low_confidence,
    }
    watch_overrides: dict[str, Any] = {
        k: v
        for k, v in {"quiet_seconds": quiet_seconds, "polling": polling, "reconcile_hours": reconcile_hours}.items()
        if v is not None
    }

    def with_watch(settings: Settings) -> Settings:
        return settings.override(watch=replace(settings.watch, **watch_overrides)).with_genre_lists(allow, ignore)

    def reload() -> Settings:  # SIGHUP: the file again, the command line still on top
        return with_watch(load_settings(config).override(**overrides))

    settings = with_watch(_settings(config, **overrides))
    roots, library = _roots_and_library(paths, settings, dry_run, verify, folders_only=True)
    daemon = Daemon(
        library,
        roots,
        settings.watch,
        workers=settings.workers,
        threads=settings.threads,
        max_windows=settings.max_windows,
        follow_symlinks=settings.follow_symlinks,
        force_catch_up=force,
        reload=reload,
        playlists=PlaylistRefresher.from_settings(library.db, settings)
        if settings.playlists_dir and not dry_run
        else None,
    )
    raise typer.Exit(daemon.run())


@app.command()
def status(
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status file's content as JSON")] = False,
) -> None:
    """State of the watch daemon using this database: queue, last track, errors since start.

    Exit status: 0 running, 3 not running, 1 no status file.
    """
    from tagger.daemon.status import read_status, status_file_for

    settings = _settings(config, db=db)
    path = status_file_for(database_url(settings.db))
    data = read_status(path)
    if data is None:
        if as_json:
            stdout.print_json(data={"state": "unknown", "running": False, "status_file": str(path)})
        else:
            console.print(f"no watch daemon status at {path} (has `tagger watch` run with this database?)")
        raise typer.Exit(1)
    data["status_file"] = str(path)
    if as_json:
        stdout.print_json(data=data)
        raise typer.Exit(0 if data["running"] else 3)
    table = Table(title="tagger watch", show_header=False)
    last = data.get("last_track") or {}
    refused = data.get("config_error")
    missing, roots = data.get("missing_roots") or {}, data.get("roots") or []
    rows = [
        ("state", f"{data.get('state')} (pid {data.get('pid')})"),
        ("started", str(data.get("started"))),
        ("roots", ", ".join(f"{r} (missing since {missing[r]})" if r in missing else r for r in roots)),
        ("queue", f"{data.get('queue', 0)} waiting, {data.get('in_progress', 0)} in progress"),
        ("last track", f"{last.get('outcome')} {last.get('path')} at {last.get('at')}" if last else "(none yet)"),
        ("errors since start", str(data.get("errors", 0))),
        ("config", f"reload refused, previous settings kept: {escape(refused)}" if refused else "ok"),
        ("since start", ", ".join(f"{n} {k}" for k, n in sorted((data.get("counts") or {}).items())) or "-"),
        ("last reconcile", str(data.get("last_reconcile") or "-")),
        ("updated", str(data.get("updated"))),
        ("status file", str(path)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)
    raise typer.Exit(0 if data["running"] else 3)


def main() -> None:
    try:
        app()
    except DatabaseError as error:  # raised anywhere (open, migrate, mid-scan): already one line naming the database
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
