"""``tagger-train transfer``: the one command that reproduces the shipped ``musicnn`` model.

tagger-train transfer --data /path/to/gtzan-sample --out runs/musicnn --ship tagger/models \\
    --compare runs/paper-cv/paper.json --compare runs/paper-ff/paper.json
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def transfer(
    data: Path = typer.Option(..., exists=True, file_okay=False, help="Folder with one sub-folder of audio per genre."),
    out: Path = typer.Option(Path("runs/musicnn"), help="Output folder (model, card, report.md, confusion PNGs)."),
    ship: Path | None = typer.Option(None, help="Also copy the int8 model and its card here (e.g. tagger/models)."),
    name: str = typer.Option("musicnn", help="Model name (file stem)."),
    version: str = typer.Option("1", help="Model version written in the card."),
    lists: Path | None = typer.Option(None, exists=True, file_okay=False, help="Fault-filtered split lists folder."),
    compare: list[Path] = typer.Option([], help="Another model's card to show beside (repeatable)."),
    speed_track: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Long track to time on."),
    folds: int = typer.Option(5, min=2, help="CV: folds per repeat."),
    repeats: int = typer.Option(3, min=1, help="CV: repeats."),
    parity_repeats: int = typer.Option(1, min=1, help="CV repeats also converted to int8 for parity."),
    max_windows: int = typer.Option(4, min=1, help="The card's default window budget per track."),
    default_head: str = typer.Option("gtzan", help="The card's default vocabulary (gtzan, msd or genres)."),
    cache_dir: Path | None = typer.Option(None, help="Feature cache (default as `run`)."),
    workers: int = typer.Option(2, min=1, help="Threads for int8 inference."),
    seed: int = typer.Option(0, help="Seed for folds, inner CV and calibration sampling."),
) -> None:
    """musicnn-transfer: frozen MSD_musicnn + linear GTZAN head; evaluate, convert to int8, write card and report."""
    import dataclasses

    from tagger.train.cli import default_cache_dir
    from tagger.train.musicnn.transfer import Options, TransferConfig, run
    from tagger.train.splits import LISTS_DIR

    if default_head not in ("gtzan", "msd", "genres"):
        raise typer.BadParameter("one of gtzan, msd, genres", param_hint="--default-head")
    config = dataclasses.replace(
        TransferConfig(), folds=folds, repeats=repeats, parity_repeats=min(parity_repeats, repeats),
        max_windows=max_windows, default_head=default_head, seed=seed,
    )  # fmt: skip
    card = run(
        Options(
            data=data,
            out=out,
            config=config,
            name=name,
            version=version,
            cache_dir=cache_dir or default_cache_dir(),
            lists_dir=lists or LISTS_DIR,
            ship=ship,
            compare=list(compare),
            speed_file=speed_track,
            workers=workers,
            log=lambda message: console.log(message),
        )
    )
    cv = card["metrics"]["cv"]["float"]["macro"]["f1"]
    parity = card["parity"]
    console.print(
        f"[bold]{card['name']}[/]: CV macro-F1 {cv['mean']:.3f} ± {cv['std']:.3f}; int8 agreement "
        f"{parity['track_agreement']:.3f}; {parity['int8_bytes'] / 1024:.0f} KiB; targets met: {parity['met']}"
    )
