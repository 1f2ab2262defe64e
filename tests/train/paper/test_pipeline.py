"""End to end on a synthetic set: train a tiny configuration, convert to int8, check it learned and
that the tagger's own loading and windowing path classifies new files with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tagger.audio import probe, read_segments
from tagger.features import window_from_segment, window_samples, window_starts
from tagger.model import Classifier, load_card
from tagger.train.paper import configs
from tagger.train.paper.experiment import Options, run
from tagger.train.paper.train import train
from tagger.train.synthetic import RECIPES, write_dataset
from tagger.train.windows import WindowSet

pytestmark = pytest.mark.train

GENRES = list(RECIPES)


def _options(data: Path, out: Path, **changes: Any) -> Options:
    config = configs.get("tiny").replace(max_epochs=changes.pop("max_epochs", 25), patience=6)
    defaults: dict[str, Any] = {
        "config": config, "data": data, "split": "random", "out": out, "cache_dir": out.parent / "cache",
        "test_fraction": 0.2, "genres": GENRES, "log": lambda _message: None,
    }  # fmt: skip
    return Options(**{**defaults, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("pipeline")
    write_dataset(root / "data", GENRES, clips_per_genre=6, seconds=4.0, sample_rate=16000, seed=1)
    (root / "data" / "drone" / "drone.00099.wav").write_bytes(b"RIFF, but not audio")  # skipped and counted
    out = root / "run"
    card = run(_options(root / "data", out))
    return out, card


def test_outputs_and_card(trained: tuple[Path, dict[str, Any]]) -> None:
    out, card = trained
    for name in ("tiny.tflite", "tiny.float.tflite", "tiny.json", "report.md", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "tiny.json").read_text()) == card
    assert (out / "tiny.tflite").stat().st_size < 2 * 1024 * 1024
    for key in ("architecture", "configuration", "seed", "split", "metrics", "parity", "data_fingerprint",
                "trainer_version", "created", "licence", "quantization", "float_model_file"):  # fmt: skip
        assert key in card, key
    assert card["quantization"] == "int8"
    assert sum(card["split"]["counts"].values()) == 30
    assert card["split"]["per_genre"]["test"] == dict.fromkeys(GENRES, 1)
    assert card["split"]["unreadable"] == ["drone/drone.00099"]
    assert card["split"]["skipped_unreadable"] == 1
    assert "| **macro avg** |" in (out / "report.md").read_text()


def test_model_learns_the_synthetic_genres(trained: tuple[Path, dict[str, Any]]) -> None:
    _, card = trained
    # Chance is 0.2; the test clips were never trained or early-stopped on.
    assert card["metrics"]["float"]["track_accuracy"] >= 0.8
    assert card["metrics"]["int8"]["track_accuracy"] >= 0.8


def test_int8_parity(trained: tuple[Path, dict[str, Any]]) -> None:
    _, card = trained
    parity = card["parity"]
    assert parity["track_agreement"] >= 0.98
    assert abs(parity["macro_f1_float"] - parity["macro_f1_int8"]) <= 0.01
    assert parity["met"]


def test_tagger_classifies_new_files_with_the_card(trained: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = trained
    card = load_card(out / "tiny.json")
    assert card.default_head == "synthetic" and card.heads["synthetic"].labels == tuple(GENRES)
    assert card.embedding_output
    classifier = Classifier(card, batch_size=3)  # not the batch it was converted with: dynamic batch
    fresh = write_dataset(tmp_path, GENRES, clips_per_genre=2, seconds=5.0, sample_rate=22050, seed=7)
    correct = 0
    for path in fresh:
        params = card.features
        starts = window_starts(probe(path).samples_at(params.sample_rate), params, card.max_windows)
        segments = read_segments(path, params.sample_rate, starts, window_samples(params))
        windows = np.stack([window_from_segment(segment, params) for segment in segments])
        prediction = classifier.predict(windows)
        assert prediction.embeddings is not None and len(prediction.embeddings) == len(windows)
        votes = prediction.probabilities["synthetic"].mean(axis=0)
        correct += GENRES[int(votes.argmax())] == path.parent.name
    assert correct >= 8, f"{correct}/10 fresh clips classified correctly"


def test_cross_validation(tmp_path: Path, trained: tuple[Path, dict[str, Any]]) -> None:
    data = trained[0].parent / "data"
    cache = trained[0].parent / "cache"  # filled by the first run
    card = run(_options(data, tmp_path, split="cv", folds=2, repeats=1, max_epochs=3, cache_dir=cache))
    assert card["metrics"]["float"]["folds"] == 2
    assert card["metrics"]["float"]["macro"]["f1"].keys() == {"mean", "std"}
    assert card["split"]["final_model_clips"] == 30
    assert card["training"]["final_epochs"] >= configs.get("tiny").min_epochs
    assert (tmp_path / "tiny.tflite").exists() and not list(tmp_path.glob("cv-*"))
    assert card["split"]["feature_cache"] == {"hits": 30, "decoded": 0, "failed": 1}  # re-training decoded nothing
    assert "Pooled over every fold" in (tmp_path / "report.md").read_text()


def test_training_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    config = configs.get("tiny").replace(max_epochs=2, min_epochs=2)
    shape = (40, config.features.window_frames, config.features.n_mels)
    data = WindowSet(rng.standard_normal(shape).astype(np.float32), np.arange(40) % 5, np.arange(40))
    first, second = (train(config, data, None, 5) for _ in range(2))
    for a, b in zip(first.export_model.get_weights(), second.export_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
