"""`tagger classify FILE --plot PNG`: the window timeline drawn with matplotlib (the optional ``plot`` extra)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from tagger.errors import TaggerError

#: Genres drawn at most: the most likely over the track; the rest would only be a tangle near zero.
MAX_LINES = 6


class PlotError(TaggerError):
    """The timeline cannot be drawn (matplotlib missing, no windows, the file cannot be written)."""


def require_matplotlib() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend, or a one-line :class:`PlotError`."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed; set before pyplot is imported
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotError("--plot needs matplotlib: pip install 'genre-tagger[plot]'") from error
    return plt


def check_target(path: Path) -> None:
    """Said before the model is loaded: matplotlib is there and the PNG's folder exists (else :class:`PlotError`)."""
    require_matplotlib()
    if not path.parent.is_dir():
        raise PlotError(f"{path.parent}: no such folder")


def plot_timeline(
    starts: Sequence[float],
    probabilities: np.ndarray,
    genres: Sequence[str],
    path: Path,
    title: str = "",
    window_seconds: float | None = None,
) -> None:
    """Draw each genre's probability per window (``probabilities``: windows x genres) against the window's
    start in seconds, into the PNG ``path`` (through a temp file and a rename: never a half-written PNG)."""
    plt = require_matplotlib()
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or len(starts) != len(probabilities) or not len(starts):
        raise PlotError("no window timeline to draw (a learned vocabulary decides from the whole track)")
    order = np.argsort(-probabilities.mean(axis=0))[:MAX_LINES]
    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        centres = np.asarray(starts) + (window_seconds or 0.0) / 2  # a window's probability belongs to its middle
        for index in order:
            axes.plot(centres, probabilities[:, index], marker="o", markersize=3, label=genres[index])
        axes.set_xlabel("time (s, window centre)")
        axes.set_ylabel("probability")
        axes.set_ylim(0, 1)
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        figure.tight_layout()
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
        os.close(fd)
        try:
            figure.savefig(temp, format="png")
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise PlotError(f"{path}: {error.strerror or error}") from error
    finally:
        plt.close(figure)
