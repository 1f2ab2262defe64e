"""``tagger-train genres``: rebuild the shipped ``genres`` head and its metrics from AllMusic-4Q + the GTZAN sample.

tagger-train genres --allmusic ../shared/datasets/allmusic-4q --gtzan ../shared/datasets/gtzan-sample \\
    --out runs/genres --ship
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def genres(
    allmusic: Path = typer.Option(..., exists=True, file_okay=False, help="AllMusic-4Q folder (metadata.csv, clips/)."),
    gtzan: Path = typer.Option(..., exists=True, file_okay=False, help="GTZAN folder (<genre>/<genre>.NNNNN.*)."),
    out: Path = typer.Option(Path("runs/genres"), help="Output folder (genres.json, report.md)."),
    ship: bool = typer.Option(False, "--ship", help="Write the head and its metrics into the model's card."),
    model: str = typer.Option("musicnn", help="The shipped model whose outputs the head reads."),
    cache_dir: Path | None = typer.Option(None, help="Backbone outputs cache (default: the trainer's cache dir)."),
    folds: int = typer.Option(5, min=2, help="Artist-grouped CV folds."),
    repeats: int = typer.Option(3, min=1, help="CV repeats (reshuffled groups)."),
    target_precision: float = typer.Option(0.75, min=0.0, max=1.0, help="First-genre precision the abstain aims at."),
    classical_limit: int = typer.Option(0, min=0, help="GTZAN classical clips with index below this (0: all)."),
    outer_windows: bool = typer.Option(
        True, help="AllMusic: all 4 spread windows (off: the middle 2 only, half the CPU per clip)."
    ),
    cached_only: bool = typer.Option(False, help="AllMusic: use only clips whose outputs are already cached."),
    windows: str = typer.Option(
        "spread", help="Windows per clip: spread (the card's max_windows, as a default scan) or all (every window)."
    ),
    seed: int = typer.Option(0, help="Seed of the folds."),
) -> None:
    """Fit the genres head (linear over the model's embedding + taggram) with artist-grouped CV; optionally ship it."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only spin on a busy machine
    from tagger.train.cli import default_cache_dir
    from tagger.train.musicnn.genres.outputs import WindowSet
    from tagger.train.musicnn.genres.run import GenreOptions, run

    if windows not in ("spread", "all"):
        raise typer.BadParameter(f"expected spread or all, got {windows!r}", param_hint="--windows")
    window_set: tuple[WindowSet, ...] = (windows,)  # type: ignore[assignment]
    if windows == "spread" and not outer_windows:
        window_set = ("spread-mid",)
    options = GenreOptions(
        allmusic=allmusic, gtzan=gtzan, out=out, cache_dir=cache_dir or default_cache_dir() / "genre-outputs",
        model=model, folds=folds, repeats=repeats, target_precision=target_precision,
        classical_limit=classical_limit or None, seed=seed, ship=ship, cached_only=cached_only,
        allmusic_sets=window_set, gtzan_sets=(windows,),  # type: ignore[arg-type]
        log=lambda message: console.log(message),
    )  # fmt: skip
    result = run(options)
    cv = result["metrics"]["cv"]
    fg = cv["first_genre"]
    console.print(
        f"genres: macro F1 {cv['tables']['new']['macro_f1']['mean']:.3f}; first genre precision "
        f"{fg['new_precision']['mean']:.3f} at coverage {fg['new_coverage']['mean']:.3f} "
        f"(old default {fg['old_precision']['mean']:.3f} at {fg['old_coverage']['mean']:.3f})"
    )
