from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tagger.errors import ModelError
from tagger.model import MODELS_DIR, Classifier, ModelCard, card_path_for, load_card

pytestmark = [pytest.mark.model, pytest.mark.runtime]


def _windows(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    shape = (n, card.features.window_frames, card.features.n_mels)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_probabilities_are_dequantized_and_normalised(tiny_card: ModelCard) -> None:
    prediction = Classifier(tiny_card).predict(_windows(tiny_card, 5))
    probabilities = prediction.probabilities["synthetic"]
    assert probabilities.shape == (5, len(tiny_card.heads["synthetic"].labels))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.02)
    assert prediction.embeddings is not None and prediction.embeddings.shape[0] == 5


def test_batching_does_not_change_results(tiny_card: ModelCard) -> None:
    windows = _windows(tiny_card, 11)
    batched = Classifier(tiny_card, batch_size=4).predict(windows).probabilities["synthetic"]
    one_by_one = Classifier(tiny_card, batch_size=1).predict(windows).probabilities["synthetic"]
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)


def test_card_names_are_resolved(tiny_card: ModelCard, tmp_path: Path) -> None:
    assert card_path_for(tiny_card.model_file).name == "tiny.json"  # a .tflite path finds its card
    with pytest.raises(ModelError, match="no model card"):
        load_card(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelError, match="missing or has a bad field"):
        load_card(bad)


def test_missing_model_file_is_a_clear_error(tiny_card: ModelCard, tmp_path: Path) -> None:
    card = json.loads(Path(card_path_for(tiny_card.model_file)).read_text())
    card["model_file"] = "absent.tflite"
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not exist"):
        Classifier(load_card(path))


def test_shipped_default_model_loads() -> None:
    card = load_card()
    prediction = Classifier(card).predict(_windows(card, 2))
    assert set(prediction.probabilities) == set(card.heads)


def test_classifier_runs_numpy_blas_with_its_thread_count(tiny_card: ModelCard) -> None:
    # Many-threaded OpenBLAS on the small mel projection costs many times the CPU of one thread.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    Classifier(tiny_card, threads=1)
    pools = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    assert pools and all(pool["num_threads"] == 1 for pool in pools)


def test_the_runtime_asked_for_is_the_one_used(tiny_card: ModelCard) -> None:
    # .ci/run runs the model tests a second time with TAGGER_TFLITE_RUNTIME=tflite-runtime (numpy<2).
    import os

    assert Classifier(tiny_card).runtime == os.environ.get("TAGGER_TFLITE_RUNTIME", "ai-edge-litert")


@pytest.mark.parametrize("card", sorted(MODELS_DIR.glob("*.json")), ids=lambda path: path.name)
def test_shipped_cards_are_strict_json(card: Path) -> None:
    """No NaN or Infinity (Python writes them by default; jq, browsers and other JSON readers refuse them)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{card.name} holds {constant}")

    json.loads(card.read_text(), parse_constant=refuse)


def test_the_trainer_writes_a_figure_that_could_not_be_computed_as_null(tmp_path: Path) -> None:
    from tagger.train.card import card_text, strict_json

    figures = {"a": [float("nan"), 1.5, np.float32("inf")], "b": "NaN"}
    assert strict_json(figures) == {"a": [None, 1.5, None], "b": "NaN"}
    card = {"heads": {}, "metrics": {"precision": float("nan")}}
    assert json.loads(card_text(card))["metrics"] == {"precision": None}
