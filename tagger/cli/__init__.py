"""The ``tagger`` command: a thin typer layer over the library (parse, call, print).

One module per group of commands (:mod:`.scan`: scan, watch, status; :mod:`.classify`; :mod:`.report`:
report, playlists, similar; :mod:`.library`: learn, restore); :mod:`.options` holds what they share.
Each command imports what it uses: `tagger classify` must start fast, without SQLAlchemy, scikit-learn
or watchdog, and worker processes re-import this package.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from tagger import __version__
from tagger.cli import classify, library, report, scan
from tagger.cli.options import console, stdout
from tagger.errors import DatabaseError

app = typer.Typer(
    help="Listens to a music library and writes genre tags into the files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version() -> None:
    """Print the version."""
    stdout.print(__version__)


# Registered in the order --help lists them.
for command in (
    scan.scan,
    classify.classify,
    report.report,
    report.playlists,
    report.similar,
    library.learn,
    library.restore,
    version,
    scan.watch,
    scan.status,
):
    app.command()(command)


def main() -> None:
    try:
        app()
    except DatabaseError as error:  # raised anywhere (open, migrate, mid-scan): already one line naming the database
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(1)
