"""What the commands share: the two consoles, the options scan, watch and the others take, settings
resolution and the one error line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tagger.config import ConfigError, Settings, resolve_settings
from tagger.policy import Policy

console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)


def or_config(name: str) -> str:
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
    Policy | None, typer.Option(help="keep: never replace the owner's genre", show_default=or_config("policy"))
]
MinConfidenceOption = Annotated[
    float | None, typer.Option(help="Below this, record but do not tag", show_default=or_config("min_confidence"))
]
TopKOption = Annotated[
    int | None, typer.Option(help="Genres written per track at most", show_default=or_config("top_k"))
]
WorkersOption = Annotated[int | None, typer.Option(help="Worker processes", show_default=or_config("workers"))]
RecordersOption = Annotated[
    int | None,
    typer.Option(help="Tracks stored and tagged at a time (1-16)", show_default=or_config("recorders")),
]
RecordingProcessesOption = Annotated[
    int | None,
    typer.Option(
        help="Processes storing and tagging, each --recorders at a time (0: this one; for a cluster's many workers)",
        show_default=or_config("recording_processes"),
    ),
]
MaxWindowsOption = Annotated[
    int | None,
    typer.Option(help="Windows classified per track, spread over it", show_default="config, else the model's"),
]
TagLowConfidenceOption = Annotated[
    bool | None,
    typer.Option("--tag-low-confidence/--no-tag-low-confidence", show_default=or_config("tag_low_confidence")),
]
MoodsOption = Annotated[
    bool | None,
    typer.Option(
        "--moods/--no-moods",
        help="Write the MOOD field too, where the model has a mood head (--no-moods: leave it alone)",
        show_default=or_config("moods"),
    ),
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


def command_settings(
    config: Path | None,
    allow: list[str] | None = None,
    ignore: list[str] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> Settings:
    """The settings of :func:`tagger.config.resolve_settings`; a bad value exits 2 with one line."""
    try:
        return resolve_settings(config, allow, ignore, tables, **overrides)
    except ConfigError as error:
        raise config_error(error) from error


def config_error(error: ConfigError) -> typer.Exit:
    console.print(f"[red]config error:[/] {escape(str(error))}", highlight=False)
    return typer.Exit(2)


def fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)  # "[plot]" is text, not markup
    return typer.Exit(1)
