"""The speed benchmark's machinery (not its figures): measuring a process tree (bench/measure.py), and the
child processes (bench/children.py, started through bench/run.py) that time the naive baseline and the
tagger's own pipeline on a real file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench import children, measure
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = pytest.mark.model
BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "techno.flac"
    make_track(path, genre="techno", seconds=20.0, seed=1)
    return path


def run_child(bench: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert bench.main(["_child", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result


def test_measure_counts_the_child_tree_cpu_and_its_memory() -> None:
    # 64 MiB written (so resident), then 0.4 s of CPU while the sampler reads its VmHWM
    busy = "import time\nx = b'x' * (64 << 20)\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    measured = measure.measure([sys.executable, "-c", busy], env={})
    assert measured.returncode == 0
    assert 0.4 <= measured.cpu <= measured.wall + 0.5
    assert measured.peak_mb["main"] >= 64  # the 64 MiB buffer, seen through VmHWM
    assert measured.others >= 0


def test_naive_child_windows_the_whole_track_through_librosa(
    bench: ModuleType, track: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tagger.model import load_card

    expected = len(children._librosa_windows(track, load_card(TINY_CARD)))
    result = run_child(bench, capsys, "naive", str(TINY_CARD), "1", str(track))
    assert result["windows"] == expected > 1
    assert result["tracks"] == 1
    assert 0 < float(result["cpu"]) < 60  # type: ignore[arg-type]


def test_windows_child_times_each_window_policy(
    bench: ModuleType, track: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_child(bench, capsys, "windows", str(TINY_CARD), "1", str(track))
    settings = result["settings"]
    assert isinstance(settings, list)
    assert [s["label"] for s in settings] == ["all (<= 256)", "16", "8", "4"]
    windows = [s["windows"] for s in settings]
    assert windows == sorted(windows, reverse=True) and windows[-1] <= 4
    assert all(s["cpu"] >= s["decode"] + s["model"] >= 0 for s in settings)


def test_model_child_times_the_card_file(bench: ModuleType, capsys: pytest.CaptureFixture[str], track: Path) -> None:
    data = run_child(bench, capsys, "model", str(TINY_CARD), "1", str(track))
    files = data["files"]
    assert isinstance(files, dict) and set(files) == {"shipped"}  # the tiny card has no previous file
    assert 0 < data["windows"] <= children.MODEL_WINDOWS  # type: ignore[operator]
    assert files["shipped"]["cpu_ms"] > 0 and files["shipped"]["repeats"] == 3


def test_the_previous_musicnn_file_is_kept_for_the_comparison() -> None:
    from tagger.model import MODELS_DIR

    previous = children.BASELINE_MODELS["musicnn"]
    assert previous.is_file() and previous.read_bytes()[4:8] == b"TFL3"  # a TFLite flatbuffer
    assert previous.read_bytes() != (MODELS_DIR / "musicnn.tflite").read_bytes()


def test_the_moods_row_compares_the_card_with_a_copy_without_its_mood_head(tmp_path: Path) -> None:
    import argparse

    from bench.figures import Bench, _card_without
    from tagger.model import ModelCard
    from tests.mood_card import MOOD_HEAD, mood_card_path

    card = mood_card_path(tmp_path / "model")
    bench = Bench(argparse.Namespace(), tmp_path, {}, str(card))
    without = ModelCard.load(_card_without(bench, [MOOD_HEAD], "without-moods.json"))
    shipped = ModelCard.load(card)
    assert shipped.mood_head == MOOD_HEAD and without.mood_head is None and MOOD_HEAD not in without.heads
    assert without.heads == {n: h for n, h in shipped.heads.items() if n != MOOD_HEAD}  # all else the same
    assert without.model_file == shipped.model_file and without.default_head == shipped.default_head


def test_the_moods_row_times_the_mood_work_of_a_track_in_process(tmp_path: Path, track: Path) -> None:
    from bench.figures import _mood_work_cpu
    from tests.mood_card import mood_card

    head_s, analysis_s = _mood_work_cpu(mood_card(tmp_path / "model"), track, None)
    assert 0 < head_s < analysis_s  # the head and its decision, a part of what the whole analysis costs
