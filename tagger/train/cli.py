"""``tagger-train``: reproduce an experiment with one command.

tagger-train run --config paper --data /path/to/gtzan --split random --out runs/paper
tagger-train run --config paper --data /path/to/gtzan --split fault-filtered --out runs/paper-ff
tagger-train run --config paper-short --data /path/to/gtzan --split cv --folds 5 --repeats 3 --out runs/short-cv
tagger-train transfer --data /path/to/gtzan-sample --out runs/musicnn --ship tagger/models \\
    --compare runs/paper-cv/paper.json --compare runs/paper-ff/paper.json
tagger-train genres --allmusic ../shared/datasets/allmusic-4q --gtzan ../shared/datasets/gtzan-sample \\
    --out runs/genres --ship
tagger-train moods --allmusic ../shared/datasets/allmusic-4q --out runs/moods --ship
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import dataclasses
import enum
import time
from pathlib import Path

import typer
from platformdirs import user_cache_dir
from rich.console import Console
from rich.table import Table

from tagger.train.musicnn.config import Options as TransferOptions
from tagger.train.musicnn.config import TransferConfig
from tagger.train.musicnn.genres.outputs import WindowSet
from tagger.train.musicnn.genres.run import GenreOptions
from tagger.train.musicnn.genres.run import run as run_genres
from tagger.train.musicnn.moods.run import MoodOptions
from tagger.train.musicnn.moods.run import run as run_moods
from tagger.train.musicnn.transfer import run as run_transfer
from tagger.train.paper import configs
from tagger.train.paper.experiment import Options as ExperimentOptions
from tagger.train.paper.experiment import run as run_experiment
from tagger.train.splits import LISTS_DIR

app = typer.Typer(help="Train, evaluate and convert genre-tagger models.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


class SplitChoice(enum.StrEnum):
    random = "random"
    fault_filtered = "fault-filtered"
    cv = "cv"


class ValidChoice(enum.StrEnum):
    lists = "lists"
    train = "train"


def default_cache_dir() -> Path:
    return Path(os.environ.get("TAGGER_TRAIN_CACHE", user_cache_dir("genre-tagger"))) / "features"


@app.command()
def run(
    config: str = typer.Option("paper", help=f"Configuration: {', '.join(configs.CONFIGS)}."),
    data: Path = typer.Option(..., exists=True, file_okay=False, help="Folder with one sub-folder of audio per genre."),
    split: SplitChoice = typer.Option(SplitChoice.random, help="Evaluation protocol."),
    out: Path = typer.Option(Path("runs/model"), help="Output folder (models, card, report.md, confusion.png)."),
    name: str | None = typer.Option(None, help="Model name (file stem); default: the configuration's name."),
    version: str = typer.Option("1", help="Model version written in the card."),
    folds: int = typer.Option(5, min=2, help="CV: folds per repeat."),
    repeats: int = typer.Option(3, min=1, help="CV: repeats (reshuffled)."),
    test_fraction: float = typer.Option(0.2, min=0.05, max=0.5, help="random: share of each genre held out."),
    valid_from: ValidChoice = typer.Option(
        ValidChoice.lists, help="fault-filtered: validation from the published list, or carved from train+valid."
    ),
    seed: int | None = typer.Option(None, help="Override the configuration's seed."),
    epochs: int | None = typer.Option(None, min=1, help="Override the configuration's maximum epochs."),
    genres: str | None = typer.Option(
        None, help="Comma-separated genre folders, in label order (default: all, sorted)."
    ),
    cache_dir: Path | None = typer.Option(
        None, help="Feature cache (default: user cache dir, or $TAGGER_TRAIN_CACHE)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode every clip; store nothing."),
    workers: int = typer.Option(2, min=1, help="Threads for decoding and TFLite inference."),
    licence: str = typer.Option(
        "MIT (model weights); trained on the data named in data_fingerprint", help="Licence text for the card."
    ),
) -> None:
    """Train a configuration, evaluate it, convert it to int8 TFLite and write its card and report."""
    try:
        chosen = configs.get(config)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0]), param_hint="--config") from None
    if seed is not None:
        chosen = chosen.replace(seed=seed)
    if epochs is not None:
        chosen = chosen.replace(max_epochs=epochs)
    options = ExperimentOptions(
        config=chosen,
        data=data,
        split=split.value,  # type: ignore[arg-type]
        out=out,
        name=name,
        version=version,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        folds=folds,
        repeats=repeats,
        test_fraction=test_fraction,
        valid_from=valid_from.value,  # type: ignore[arg-type]
        genres=[g.strip() for g in genres.split(",") if g.strip()] if genres else None,
        workers=workers,
        licence=licence,
        log=lambda message: console.log(message),
    )
    started = time.perf_counter()
    card = run_experiment(options)
    metrics = card["metrics"]
    macro = metrics["float"]["macro"]
    f1 = macro["f1"]
    shown = f"{f1['mean']:.3f} ± {f1['std']:.3f}" if isinstance(f1, dict) else f"{f1:.3f}"
    console.print(
        f"[bold]{card['name']}[/]: track macro-F1 {shown} ({metrics['protocol']}); "
        f"int8/float agreement {card['parity']['track_agreement']:.3f}; {time.perf_counter() - started:.0f} s"
    )


@app.command("configs")
def list_configs() -> None:
    """List the named configurations."""
    table = Table("name", "window", "network", "description")
    for config in configs.CONFIGS.values():
        params = config.features
        table.add_row(
            config.name,
            f"{params.window_frames}x{params.n_mels} @ {params.sample_rate} Hz ({params.window_seconds:.1f} s)",
            f"filters {list(config.network.filters)}" + (" +bn" if config.network.batch_norm else ""),
            config.description,
        )
    Console().print(table)


@app.command()
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
    if default_head not in ("gtzan", "msd", "genres"):
        raise typer.BadParameter("one of gtzan, msd, genres", param_hint="--default-head")
    config = dataclasses.replace(
        TransferConfig(), folds=folds, repeats=repeats, parity_repeats=min(parity_repeats, repeats),
        max_windows=max_windows, default_head=default_head, seed=seed,
    )  # fmt: skip
    card = run_transfer(
        TransferOptions(
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


@app.command()
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
    with_mtt: bool = typer.Option(
        False, "--with-mtt", help="CV only: append MTT_musicnn's embedding + taggram (is a second backbone worth it?)."
    ),
) -> None:
    """Fit the genres head (linear over the model's embedding + taggram) with artist-grouped CV; optionally ship it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only spin on a busy machine

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
        second_backbone=with_mtt, log=lambda message: console.log(message),
    )  # fmt: skip
    if ship and with_mtt:
        raise typer.BadParameter("a head over MTT_musicnn cannot be shipped (CV only)", param_hint="--with-mtt")
    result = run_genres(options)
    cv = result["metrics"]["cv"]
    fg = cv["first_genre"]
    console.print(
        f"genres: macro F1 {cv['tables']['new']['macro_f1']['mean']:.3f}; first genre precision "
        f"{fg['new_precision']['mean']:.3f} at coverage {fg['new_coverage']['mean']:.3f} "
        f"(old default {fg['old_precision']['mean']:.3f} at {fg['old_coverage']['mean']:.3f})"
    )


@app.command()
def moods(
    allmusic: Path = typer.Option(..., exists=True, file_okay=False, help="AllMusic-4Q folder (metadata.csv, clips/)."),
    out: Path = typer.Option(Path("runs/moods"), help="Output folder (moods.json, report.md)."),
    ship: bool = typer.Option(False, "--ship", help="Write the mood head and its metrics into the model's card."),
    model: str = typer.Option("musicnn", help="The shipped model whose outputs the head reads."),
    cache_dir: Path | None = typer.Option(None, help="Backbone outputs cache (default: the genres command's)."),
    folds: int = typer.Option(5, min=2, help="Artist-grouped CV folds."),
    repeats: int = typer.Option(3, min=1, help="CV repeats (reshuffled artists)."),
    target_precision: float = typer.Option(0.8, min=0.0, max=1.0, help="Written-mood precision the abstain aims at."),
    parity_clips: int = typer.Option(8, min=0, help="Real clips the runtime scores to check it agrees."),
    seed: int = typer.Option(0, help="Seed of the folds."),
    random_folds: bool = typer.Option(
        False, "--random-folds", help="CV only: folds by clip, not artist (the published figure's protocol)."
    ),
) -> None:
    """Fit the moods head (softmax over the 4 quadrants, over the model's embedding + taggram); optionally ship it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only spin on a busy machine
    if ship and random_folds:
        raise typer.BadParameter("a head chosen on random folds is not shipped", param_hint="--random-folds")
    options = MoodOptions(
        allmusic=allmusic, out=out, cache_dir=cache_dir or default_cache_dir() / "genre-outputs", model=model,
        folds=folds, repeats=repeats, target_precision=target_precision, parity_clips=parity_clips, seed=seed,
        ship=ship, random_folds=random_folds, log=lambda message: console.log(message),
    )  # fmt: skip
    cv = run_moods(options)["metrics"]["cv"]
    console.print(
        f"moods: quadrant macro F1 {cv['macro_f1']['mean']:.3f} ± {cv['macro_f1']['std']:.3f}; written moods "
        f"precision {cv['written']['precision']['mean']:.3f} at coverage {cv['written']['coverage']['mean']:.3f}"
    )


def main() -> None:
    app()
