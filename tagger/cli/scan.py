"""``tagger scan``, ``tagger watch`` and ``tagger status``: the one-shot scan, the daemon, and its state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tagger.cli.options import (
    AllowOption,
    ConfigOption,
    DbOption,
    IgnoreOption,
    MaxWindowsOption,
    MinConfidenceOption,
    ModelOption,
    MoodsOption,
    PolicyOption,
    RecordersOption,
    RecordingProcessesOption,
    TagLowConfidenceOption,
    TopKOption,
    VerifyOption,
    VocabularyOption,
    WorkersOption,
    command_settings,
    console,
    fail,
    or_config,
    stdout,
)
from tagger.config import Settings, database_url
from tagger.errors import ClusterError, ModelError, TaggerError

if TYPE_CHECKING:
    from tagger.analysis import AnalysisBackend
    from tagger.record import Library
    from tagger.scan import ScanSummary
    from tagger.track import TrackReport

ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Analyse on a Dask cluster: tcp://SCHEDULER:8786, or local:N worker processes (README: Large archives)",
        show_default="config, else this machine's worker pool",
    ),
]


def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders or files", show_default="roots from the config")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show existing -> proposed; write nothing")] = False,
    policy: PolicyOption = None,
    min_confidence: MinConfidenceOption = None,
    top_k: TopKOption = None,
    workers: WorkersOption = None,
    recorders: RecordersOption = None,
    recording_processes: RecordingProcessesOption = None,
    max_windows: MaxWindowsOption = None,
    tag_low_confidence: TagLowConfidenceOption = None,
    moods: MoodsOption = None,
    allow: AllowOption = None,
    ignore: IgnoreOption = None,
    force: Annotated[bool, typer.Option("--force", help="Re-classify tracks even if unchanged")] = False,
    album_mode: Annotated[
        str | None,
        typer.Option(
            help="consensus: the tracks of an album get the album's genre; track: each its own",
            show_default=or_config("album_mode"),
        ),
    ] = None,
    verify: VerifyOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary and failures")] = False,
    cluster: ClusterOption = None,
) -> None:
    """Tag every audio file under PATHS (one-shot); unchanged files are skipped on later runs.

    Output: a line per changed track and the summary go to stdout (`scan > log` keeps them all);
    the progress bar goes to stderr, and only when stderr is a terminal.
    """
    from tagger.scan import Scanner, ScanSummary
    from tagger.track import Outcome

    settings = command_settings(
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
        recorders=recorders,
        recording_processes=recording_processes,
        max_windows=max_windows,
        tag_low_confidence=tag_low_confidence,
        moods=moods,
        album_mode=album_mode,
        cluster=cluster,
    )
    if settings.cluster:  # before the database is opened: a SQLite file is refused, not created
        _refuse_sqlite(settings)
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
        backend=_cluster_backend(settings, library) if settings.cluster else None,
        recorders=settings.recorders,
        recording_processes=settings.recording_processes,
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
                if report.changed and not (as_json or quiet):
                    for line in _change_lines(report):
                        stdout.print(line, markup=False, highlight=False)
                if report.album_note and not (as_json or quiet):
                    stdout.print(f"{'album':>9}  {report.path}  {report.album_note}", markup=False, highlight=False)
        except (ModelError, ClusterError) as error:  # the workers could not load the model, or there are none
            raise fail(error) from error
    _print_summary(summary, as_json)
    if summary.counts.get(Outcome.FAILED.value) and summary.counts.total() == summary.counts[Outcome.FAILED.value]:
        raise typer.Exit(1)


def _refuse_sqlite(settings: Settings) -> None:
    from tagger.cluster import require_server_database

    try:
        require_server_database(database_url(settings.db))
    except TaggerError as error:
        raise fail(error) from error


def _cluster_backend(settings: Settings, library: Library) -> AnalysisBackend:
    """The cluster's workers analyse; this process records (closed with the scanner)."""
    from tagger.cluster import open_cluster

    assert settings.cluster is not None
    try:
        return open_cluster(settings.cluster, library.card, library.db.url, settings.threads, settings.path_map)
    except TaggerError as error:
        raise fail(error) from error


def _change_lines(report: TrackReport) -> list[str]:
    """``   tagged  PATH  (none) -> Jazz 0.91`` for the genre, ``   tagged  PATH  mood: (none) -> Happy 0.80``
    for the mood, each only when that role was (would be) written; the confidence is the model's for its top one."""
    from tagger.track import Outcome, RoleReport

    written = (Outcome.TAGGED, Outcome.WOULD_TAG)
    sides: list[tuple[str, TrackReport | RoleReport]] = [("", report)] if report.outcome in written else []
    if report.mood is not None and report.mood.outcome in written:
        sides.append(("mood: ", report.mood))
    lines = []
    for label, side in sides:
        arrow = f"{', '.join(side.existing) or '(none)'} -> {', '.join(side.proposed)}"
        confidence = f" {side.confidence:.2f}" if side.confidence is not None else ""
        lines.append(f"{side.outcome.value:>9}  {report.path}  {label}{arrow}{confidence}")
    return lines


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
        raise fail(error) from error


def _print_summary(summary: ScanSummary, as_json: bool) -> None:
    from tagger.track import Outcome

    if as_json:
        stdout.print_json(data=summary.to_dict())
        return
    table = Table(title="scan summary", show_header=False)
    for outcome in Outcome:
        if summary.counts.get(outcome.value):
            table.add_row(outcome.value, str(summary.counts[outcome.value]))
    for outcome in Outcome:  # the tracks whose mood was decided, by what happened to their MOOD field
        if summary.mood_counts.get(outcome.value):
            table.add_row(f"mood {outcome.value}", str(summary.mood_counts[outcome.value]))
    if summary.recovered:
        table.add_row("recovered", str(summary.recovered))
    stdout.print(table)
    for path, reason in summary.failures:
        stdout.print(f"[red]failed[/] {path}: {reason}", markup=True, highlight=False)


def watch(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders to watch", show_default="roots from the config")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Log existing -> proposed; write nothing")] = False,
    policy: PolicyOption = None,
    min_confidence: MinConfidenceOption = None,
    top_k: TopKOption = None,
    workers: WorkersOption = None,
    recorders: RecordersOption = None,
    max_windows: MaxWindowsOption = None,
    tag_low_confidence: TagLowConfidenceOption = None,
    moods: MoodsOption = None,
    allow: AllowOption = None,
    ignore: IgnoreOption = None,
    force: Annotated[bool, typer.Option("--force", help="Re-classify every track in the start-up catch-up")] = False,
    verify: VerifyOption = False,
    quiet_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="A file must be unchanged this long before it is read",
            show_default=or_config("quiet_seconds"),
        ),
    ] = None,
    polling: Annotated[
        bool | None,
        typer.Option(
            "--polling/--no-polling",
            help="Poll instead of inotify (network file systems)",
            show_default=or_config("polling"),
        ),
    ] = None,
    reconcile_hours: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Full re-check every N hours, for dropped events (0: never)",
            show_default=or_config("reconcile_hours"),
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every event and unchanged file")] = False,
    db: DbOption = None,
    model: ModelOption = None,
    vocabulary: VocabularyOption = None,
    config: ConfigOption = None,
) -> None:
    """Watch PATHS and tag files as they arrive, change or move (a daemon: SIGTERM stops, SIGHUP reloads the config)."""
    from tagger.config import resolve_settings
    from tagger.daemon import Daemon
    from tagger.daemon.playlists import PlaylistRefresher
    from tagger.systemd import configure_logging

    configure_logging(verbose)
    flags: dict[str, Any] = {
        "allow": allow,
        "ignore": ignore,
        "tables": {"watch": {"quiet_seconds": quiet_seconds, "polling": polling, "reconcile_hours": reconcile_hours}},
        "db": db,
        "model": model,
        "vocabulary": vocabulary,
        "policy": policy,
        "min_confidence": min_confidence,
        "top_k": top_k,
        "workers": workers,
        "recorders": recorders,
        "max_windows": max_windows,
        "tag_low_confidence": tag_low_confidence,
        "moods": moods,
    }

    def reload() -> Settings:  # SIGHUP: the file again, the command line still on top
        return resolve_settings(config, **flags)

    settings = command_settings(config, **flags)
    roots, library = _roots_and_library(paths, settings, dry_run, verify, folders_only=True)
    refresher = (
        PlaylistRefresher.from_settings(library.db, settings) if settings.playlists_dir and not dry_run else None
    )
    daemon = Daemon(
        library,
        roots,
        settings.watch,
        workers=settings.workers,
        threads=settings.threads,
        recorders=settings.recorders,
        max_windows=settings.max_windows,
        follow_symlinks=settings.follow_symlinks,
        force_catch_up=force,
        reload=reload,
        playlists=refresher,
    )
    raise typer.Exit(daemon.run())


def status(
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status file's content as JSON")] = False,
) -> None:
    """State of the watch daemon using this database: queue, last track, errors since start.

    Exit status: 0 running, 3 not running, 1 no status file.
    """
    from tagger.daemon.status import read_status, status_file_for, status_rows

    settings = command_settings(config, db=db)
    path = status_file_for(database_url(settings.db))
    data = read_status(path)
    if data is None:
        if as_json:
            stdout.print_json(data={"state": "unknown", "running": False, "status_file": str(path)})
        else:
            console.print(f"no watch daemon status at {path} (has `tagger watch` run with this database?)")
        raise typer.Exit(1)
    if as_json:
        stdout.print_json(data={**data, "status_file": str(path)})
    else:
        table = Table(title="tagger watch", show_header=False)
        for name, value in status_rows(data, path):
            table.add_row(name, escape(value))  # paths and the config error are text, not markup
        stdout.print(table)
    raise typer.Exit(0 if data["running"] else 3)
