"""The figures measured in child processes: the naive baselines vs the scan, the model files, the window budgets."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.corpus import Corpus
from bench.figures import Bench, Row, fmt_s
from bench.measure import measure

RUN = Path(__file__).resolve().with_name("run.py")  # children start through the bench's own command
# Targets (the performance issue's).
MODEL_SPEEDUP_MIN = 4.0
NAIVE_SPEEDUP_MIN = 5.0


def _child(bench: Bench, kind: str, files: Sequence[Path], env: dict[str, str] | None = None) -> dict[str, Any]:
    command = [sys.executable, str(RUN), "_child", kind, bench.model, str(bench.args.repeat)]
    result = measure([*command, *map(str, files)], {**bench.env, **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"{kind} child failed")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def bench_naive(bench: Bench, corpus: Corpus, scans: dict[int, dict[str, float]]) -> None:
    scan_cpu = scans[1]["cpu_per_track"]
    if importlib.util.find_spec("librosa") is None:  # the [bench] extra: the runtime does not need it
        for title in ("naive baseline", "naive baseline, Keras"):
            bench.add(Row(f"{title} (CPU/track)", "skipped", note="needs librosa: pip install .[bench]"))
        return
    naive = _child(bench, "naive", corpus.tracks)
    bench.raw["naive"] = naive
    _add_baseline(
        bench,
        "naive baseline: librosa.load + melspectrogram + invoke per window",
        naive,
        f"first track (imports, numba JIT) {naive['warm_up']:.1f} s not counted; 1 BLAS thread",
        scan_cpu,
    )
    title = "naive baseline, Keras: librosa.load + melspectrogram + model.predict per window"
    checkpoint = _keras_checkpoint(bench)
    if isinstance(checkpoint, Unavailable):
        bench.add(Row(f"{title} (CPU/track)", "skipped", note=checkpoint.reason))
        return
    from tagger.train.musicnn.pretrained import ENV_DIR

    keras = _child(bench, "keras", corpus.tracks[:2], env={ENV_DIR: checkpoint})
    bench.raw["naive_keras"] = keras
    note = f"{keras['tracks']} tracks, once; float backbone, 1 TensorFlow thread; first track not counted"
    _add_baseline(bench, title, keras, note, scan_cpu, versus="Keras naive baseline")


def _add_baseline(
    bench: Bench, title: str, figures: dict[str, Any], note: str, scan_cpu: float, versus: str = "naive baseline"
) -> None:
    """A baseline's CPU per track, then the scan's speed-up over it against the target."""
    bench.add(
        Row(
            f"{title} (CPU/track)",
            fmt_s(figures["cpu"]),
            note=f"wall {fmt_s(figures['wall'])}; {figures['windows']:.0f} windows; {note}",
        )
    )
    speedup = figures["cpu"] / scan_cpu
    bench.add(
        Row(
            f"scan vs {versus} (CPU per track)",
            f"{speedup:.1f}x faster",
            f">= {NAIVE_SPEEDUP_MIN:g}x",
            speedup >= NAIVE_SPEEDUP_MIN,
        )
    )


@dataclass(frozen=True)
class Unavailable:
    reason: str


def _keras_checkpoint(bench: Bench) -> str | Unavailable:
    """The musicnn checkpoint for the Keras baseline, or why that baseline cannot run here."""
    from tagger.model import load_card

    name = load_card(bench.model).name
    if name != "musicnn":
        return Unavailable(f"card {name!r} ships no Keras model (musicnn's backbone is rebuilt from its checkpoint)")
    if importlib.util.find_spec("tensorflow") is None:
        return Unavailable("needs TensorFlow: pip install .[train]")
    from tagger.train.musicnn.pretrained import PretrainedNotFound, locate_checkpoint

    try:
        return locate_checkpoint(download=False)
    except PretrainedNotFound as error:
        return Unavailable(f"no musicnn checkpoint here ({error})")


def bench_model(bench: Bench, corpus: Corpus) -> None:
    """Model milliseconds per window, 1 thread: the card's file and, for musicnn, the file it replaced."""
    data = _child(bench, "model", corpus.tracks[:1])
    bench.raw["model"] = data
    for name, figures in data["files"].items():
        bench.add(
            Row(
                f"model ms per window, 1 thread: {name}",
                f"{figures['cpu_ms']:.1f} ms",
                note=f"CPU time, best of {figures['repeats']} predicts of {data['windows']} windows (batches of 8); "
                f"wall {figures['wall_ms']:.1f} ms; {figures['bytes'] / 1e6:.1f} MB; {data['runtime']}",
            )
        )
    if "baseline" in data["files"]:
        speedup = data["files"]["baseline"]["cpu_ms"] / data["files"]["shipped"]["cpu_ms"]
        bench.add(
            Row(
                "model speed-up over the previous file (ms per window, 1 thread)",
                f"{speedup:.1f}x",
                f">= {MODEL_SPEEDUP_MIN:g}x",
                speedup >= MODEL_SPEEDUP_MIN,
                note=f"previous: {data['baseline_file']}",
            )
        )


def bench_windows(bench: Bench, corpus: Corpus) -> Table:
    data = _child(bench, "windows", corpus.tracks)
    bench.raw["windows"] = data
    table = Table(title="analyse_track per 4-min track by max_windows (in-process, model loaded; CPU s, medians)")
    for column in ("max_windows", "windows", "CPU total", "decode", "features", "model", "wall", "mp3 CPU", "flac CPU"):
        table.add_column(column, justify="right")
    for setting in data["settings"]:
        table.add_row(
            setting["label"],
            f"{setting['windows']:.0f}",
            f"{setting['cpu']:.3f}",
            f"{setting['decode']:.3f}",
            f"{setting['cpu'] - setting['decode'] - setting['model']:.3f}",
            f"{setting['model']:.3f}",
            f"{setting['wall']:.3f}",
            f"{setting['cpu.mp3']:.3f}",
            f"{setting['cpu.flac']:.3f}",
        )
    return table
