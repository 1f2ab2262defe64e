"""``tagger-train``: reproduce an experiment with one command.

tagger-train run --config paper --data /path/to/gtzan --split random --out runs/paper
tagger-train run --config paper --data /path/to/gtzan --split fault-filtered --out runs/paper-ff
tagger-train run --config paper-short --data /path/to/gtzan --split cv --folds 5 --repeats 3 --out runs/short-cv
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import enum
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tagger.train.paper import configs

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
    from platformdirs import user_cache_dir

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
    from tagger.train.paper.experiment import Options
    from tagger.train.paper.experiment import run as run_experiment

    try:
        chosen = configs.get(config)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0]), param_hint="--config") from None
    if seed is not None:
        chosen = chosen.replace(seed=seed)
    if epochs is not None:
        chosen = chosen.replace(max_epochs=epochs)
    options = Options(
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


from tagger.train.transfer_cli import transfer  # noqa: E402 - the musicnn-transfer command (tagger/train/musicnn/transfer.py)

app.command("transfer")(transfer)

from tagger.train.genres_cli import genres  # noqa: E402 - the genres head (tagger/train/musicnn/genres/run.py)

app.command("genres")(genres)


def main() -> None:
    app()
