"""Child processes measured alone (``bench/run.py _child KIND MODEL REPEAT FILES...``): the naive baselines
(librosa + one interpreter or Keras call per window), the window-budget sweep and the model files' speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import median

REPO = Path(__file__).resolve().parents[1]

WINDOW_SETTINGS: tuple[int | None, ...] = (None, 16, 8, 4)  # None: every window (up to the pipeline's cap)
# The musicnn file shipped before the im2col rebuild (issue 14), timed beside the card's file in one run.
BASELINE_MODELS: dict[str, Path] = {"musicnn": REPO / "bench" / "baseline" / "musicnn-1-conv-int8-selective.tflite"}
MODEL_WINDOWS = 32  # windows per timed predict (batches of 8, as the tagger)


def _librosa_windows(path: Path, card: Any) -> np.ndarray:
    """The usual GTZAN-project front half: the whole track through librosa at the model's rate, then windows."""
    import librosa

    p = card.features
    y, sr = librosa.load(path, sr=p.sample_rate)
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
        power=p.power, htk=p.mel_htk, norm=p.mel_norm,
    )  # fmt: skip
    db = (librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T - np.asarray(p.mean)) / np.asarray(p.std)
    starts = range(0, len(db) - p.window_frames + 1, p.window_hop_frames)
    windows = np.stack([db[begin : begin + p.window_frames] for begin in starts]).astype(np.float32)
    return windows[..., None] if card.input_layout == "frames_mels_channel" else windows


def _time_tracks(one_track: Callable[[Path], int], files: list[Path], repeat: int) -> dict[str, Any]:
    """Mean over ``files`` of the median over ``repeat`` runs; the first file once before, untimed (imports, JIT)."""
    start = time.perf_counter()
    one_track(files[0])
    warm_up = time.perf_counter() - start
    cpu, wall, windows = [], [], []
    for path in files:
        c, w = [], []
        for _ in range(repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            count = one_track(path)
            c.append(time.process_time() - c0)
            w.append(time.perf_counter() - w0)
        cpu.append(median(c))
        wall.append(median(w))
        windows.append(count)
    return {"cpu": float(np.mean(cpu)), "wall": float(np.mean(wall)), "windows": float(np.mean(windows)),
            "warm_up": warm_up, "tracks": len(files)}  # fmt: skip


def child_naive(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """Whole track through librosa, then one interpreter call per window (batch 1)."""
    from threadpoolctl import threadpool_limits

    from tagger.model import interpreter_class, load_card

    threadpool_limits(1, user_api="blas")  # as the tagger: a fair CPU figure on a shared machine
    card = load_card(model)
    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(card.model_file), num_threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def one_track(path: Path) -> int:
        windows = _librosa_windows(path, card)
        for window in windows:
            window = window[None]
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                info = np.iinfo(detail["dtype"])
                window = np.clip(np.round(window / scale + zero), info.min, info.max)
            interpreter.set_tensor(detail["index"], window.astype(detail["dtype"]))
            interpreter.invoke()
            for index in outputs:
                interpreter.get_tensor(index)
        return len(windows)

    return _time_tracks(one_track, files, repeat)


def child_keras(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """Whole track through librosa, then Keras ``model.predict`` per window on the float musicnn backbone
    (rebuilt from its checkpoint; the genre head's one Dense layer is left out: it costs nothing)."""
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    from tagger.model import load_card
    from tagger.train.musicnn.port import load_pretrained

    threadpool_limits(1, user_api="blas")
    tf.config.threading.set_intra_op_parallelism_threads(1)  # one core, as the tagger's worker
    tf.config.threading.set_inter_op_parallelism_threads(1)
    card = load_card(model)
    network, _ = load_pretrained(download=False)

    def one_track(path: Path) -> int:
        windows = _librosa_windows(path, card)
        for window in windows:
            network.predict(window[None], verbose=0)
        return len(windows)

    return _time_tracks(one_track, files, 1)


def child_windows(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """The trainer's window-budget sweep (``analyse_track`` per track for each max_windows), split into decode /
    features / model CPU; medians over ``repeat`` runs, means over the files."""
    from tagger.model import load_card
    from tagger.pipeline import WINDOW_CAP, analyse_track
    from tagger.train.speed import TimedClassifier, sweep

    classifier = TimedClassifier(load_card(model), threads=1)
    analyse_track(files[0], classifier, 4)  # warm-up
    settings = []
    for max_windows, per_path in zip(WINDOW_SETTINGS, sweep(classifier, files, WINDOW_SETTINGS, repeat), strict=True):
        per_file: dict[str, list[float]] = {key: [] for key in ("cpu", "wall", "model", "decode", "windows")}
        for runs in per_path:
            per_file["cpu"].append(median([run.cpu for run in runs]))
            per_file["wall"].append(median([run.wall for run in runs]))
            per_file["model"].append(median([run.model_cpu for run in runs]))
            per_file["decode"].append(median([run.decode_cpu for run in runs]))
            per_file["windows"].append(median([run.windows for run in runs]))
        setting: dict[str, Any] = {key: float(np.mean(values)) for key, values in per_file.items()}
        setting["label"] = f"all (<= {WINDOW_CAP})" if max_windows is None else str(max_windows)
        for kind in (".mp3", ".flac"):
            chosen = [c for c, p in zip(per_file["cpu"], files, strict=True) if p.suffix == kind]
            setting[f"cpu{kind}"] = float(np.mean(chosen)) if chosen else float("nan")
        settings.append(setting)
    return {"settings": settings}


def child_model(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """The card's model file and its baseline (if any) on the same real windows, alternately, 1 thread."""
    import dataclasses

    from tagger.model import Classifier, load_card
    from tagger.pipeline import analyse_track

    card = load_card(model)
    windows: list[np.ndarray] = []

    class Keep(Classifier):  # the pipeline's own windows of a real track
        def predict(self, batch: np.ndarray) -> Any:
            windows.append(batch)
            return super().predict(batch)

    analyse_track(files[0], Keep(card, threads=1), MODEL_WINDOWS)
    batch = np.concatenate(windows)
    baseline = BASELINE_MODELS.get(card.name)
    cards = {"shipped": card}
    if baseline is not None and baseline.exists():
        cards["baseline"] = dataclasses.replace(card, model_file=baseline)
    classifiers = {name: Classifier(c, threads=1) for name, c in cards.items()}
    for classifier in classifiers.values():
        classifier.predict(batch[:8])  # warm-up: allocation, weight packing
    best = {name: (float("inf"), float("inf")) for name in classifiers}
    repeats = max(3, repeat)
    for _ in range(repeats):
        for name, classifier in classifiers.items():
            c0, w0 = time.process_time(), time.perf_counter()
            classifier.predict(batch)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    return {
        "windows": len(batch),
        "runtime": next(iter(classifiers.values())).runtime,
        "baseline_file": str(baseline.relative_to(REPO)) if "baseline" in cards and baseline else None,
        "files": {
            name: {"cpu_ms": 1000 * cpu / len(batch), "wall_ms": 1000 * wall / len(batch), "repeats": repeats,
                   "bytes": cards[name].model_file.stat().st_size}
            for name, (cpu, wall) in best.items()
        },
    }  # fmt: skip


CHILDREN: dict[str, Callable[[str, int, list[Path]], dict[str, Any]]] = {
    "naive": child_naive,
    "keras": child_keras,
    "windows": child_windows,
    "model": child_model,
}
