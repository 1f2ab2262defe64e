"""musicnn-transfer without the dataset: a tiny random musicnn-shaped backbone, a head on synthetic outputs,
the selective int8 conversion and its parity, the card through the tagger's loader and Classifier, the
``msd`` multilabel path through :func:`tagger.aggregate.aggregate`, and the protocol / threshold code on
synthetic clip outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.train

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tagger.aggregate import aggregate  # noqa: E402
from tagger.model import Classifier, Head, load_card  # noqa: E402
from tagger.train.card import write_card  # noqa: E402
from tagger.train.convert import float_nodes, selective_int8, write  # noqa: E402
from tagger.train.datasets import Clip, Dataset  # noqa: E402
from tagger.train.musicnn.backbone import ClipOutputs, WindowOutputs, spread_windows  # noqa: E402
from tagger.train.musicnn.config import GTZAN_GENRES, Prepared, TransferConfig  # noqa: E402
from tagger.train.musicnn.export import (  # noqa: E402
    INT8_LAYERS,
    VocabularySpec,
    build_export_model,
    convert_shipped,
    heads_for_card,
    margin_scores,
)
from tagger.train.musicnn.folds import fit_fold  # noqa: E402
from tagger.train.musicnn.layouts import fast_layout  # noqa: E402
from tagger.train.musicnn.port import MUSICNN_FEATURES, build_musicnn  # noqa: E402
from tagger.train.musicnn.pretrained import MSD_LABELS  # noqa: E402
from tagger.train.musicnn.softmax_head import WindowTable, fit_head, select, track_probabilities  # noqa: E402
from tagger.train.musicnn.vocabulary import choose_thresholds, vocabulary_evidence  # noqa: E402
from tagger.train.musicnn.zero_shot import GENRE_TAGS  # noqa: E402

MSD_TAGS = GENRE_TAGS
SPEC = VocabularySpec(MSD_TAGS, tuple(0.3 for _ in MSD_TAGS), ("classical", "disco", "reggae"), (0.4, 0.5, 0.6))


def _randomise_batch_norms(model: Any, rng: np.random.Generator) -> None:
    """Non-trivial inference statistics, so the folding and rescaling paths are exercised (negative gains too, as
    musicnn's own: a max-pool then turns into a min)."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = (np.asarray(w) for w in layer.get_weights())
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape) * rng.choice([-1, 1], gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, variance.shape),
            ])  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny musicnn (same layout, 12/3 front-end filters, 8 mid-end, 16-unit embedding) with a trained head,
    converted the way the shipped model is, with its card."""
    keras.utils.set_random_seed(0)  # Keras's initial weights too: the same tiny net on every run
    rng = np.random.default_rng(0)
    port = build_musicnn(frontend_factor=0.1, midend_filters=8, backend_units=16)
    _randomise_batch_norms(port, rng)
    friendly = fast_layout(port)
    windows = np.abs(rng.normal(1.0, 1.0, size=(30, 187, 96))).astype(np.float32)
    outputs = port(windows, training=False)
    embedding, taggram = np.asarray(outputs["embedding"]), np.asarray(outputs["taggram"])
    labels = np.arange(len(windows)) % len(GTZAN_GENRES)
    table = WindowTable({"embedding": embedding, "taggram": taggram}, labels, np.arange(len(windows)),
                        np.ones(len(windows), dtype=bool))  # fmt: skip
    head = fit_head(table, "embedding+taggram", 1.0, len(GTZAN_GENRES))
    model = build_export_model(friendly, head, GTZAN_GENRES, MSD_TAGS, SPEC)
    out = tmp_path_factory.mktemp("tiny-musicnn")
    names = write(selective_int8(model, [w[None] for w in windows[:8]], INT8_LAYERS), out / "tiny.tflite")
    thresholds = {t: 0.3 for t in MSD_TAGS}
    card = {
        "name": "tiny-musicnn", "version": "0", "model_file": "tiny.tflite", "features": MUSICNN_FEATURES.to_dict(),
        "heads": heads_for_card(GTZAN_GENRES, names, MSD_TAGS, thresholds, SPEC, dict.fromkeys(SPEC.labels, 0.5)),
        "default_head": "genres", "embedding_output": names["embedding"], "max_windows": 4,
    }  # fmt: skip
    write_card(card, out / "tiny.json")
    return {"model": model, "windows": windows, "card_path": out / "tiny.json", "head": head, "outputs": names}


def test_export_model_equals_backbone_plus_head_in_float(tiny: dict[str, Any]) -> None:
    windows = tiny["windows"][:6]
    out = {k: np.asarray(v) for k, v in tiny["model"](windows, training=False).items()}
    table = WindowTable({"embedding": out["embedding"], "taggram": out["taggram"]}, np.zeros(6, int), np.arange(6),
                        np.ones(6, dtype=bool))  # fmt: skip
    # float32 Keras against sklearn's float64 head: 1.2e-4 seen when other tests change TF's thread pools first.
    np.testing.assert_allclose(out["gtzan"], tiny["head"].predict_proba(table), atol=5e-4)
    np.testing.assert_allclose(out["msd"], out["taggram"][:, [MSD_LABELS.index(t) for t in MSD_TAGS]], atol=1e-6)
    expected = margin_scores(out["taggram"], out["gtzan"], SPEC, GTZAN_GENRES)
    np.testing.assert_allclose(out["genres"], expected, atol=1e-4)
    # 0.5 exactly at the raw threshold: a tag at 0.3 and a genre at its threshold.
    at = margin_scores(np.full((1, 50), 0.3), np.full((1, 10), 0.4), SPEC, GTZAN_GENRES)
    np.testing.assert_allclose(at[0, : len(MSD_TAGS) + 1], 0.5, atol=1e-6)


def test_only_the_timbral_front_end_is_int8(tiny: dict[str, Any]) -> None:
    from tagger.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(tiny["card_path"].with_suffix(".tflite")))
    details = interpreter.get_tensor_details()
    computed_in_int8 = set()  # layers of ops (other than quantize / dequantize) with an int8 input
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and any(
            details[i]["dtype"] == np.int8 for i in op["inputs"] if i >= 0
        ):
            for i in op["outputs"]:
                computed_in_int8 |= {p.split("/")[1].removesuffix("_1") for p in details[i]["name"].split(";")
                                     if "/" in p}  # fmt: skip
    assert computed_in_int8 <= INT8_LAYERS
    assert {"timbral_74_conv", "timbral_77_conv", "timbral_74_pool"} <= computed_in_int8
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert all(detail["dtype"] == np.float32 for detail in interpreter.get_output_details())
    names = ["m_1/timbral_74_bn_1/Mul;m_1/timbral_74_pool_1/x", "m_1/timbral_74_conv_1/x", "Identity:0"]
    assert float_nodes(names, INT8_LAYERS) == [names[0], names[2]]


def test_card_loads_and_classifier_gives_every_output(tiny: dict[str, Any]) -> None:
    card = load_card(tiny["card_path"])
    assert set(card.heads) == {"gtzan", "msd", "genres"} and card.default_head == "genres"
    assert card.heads["msd"].task == "multilabel" and card.heads["msd"].genre_name("rnb") == "R&B"
    assert card.heads["gtzan"].genre_name("hiphop") == "Hip-Hop"
    windows = tiny["windows"][:11]
    prediction = Classifier(card, batch_size=4).predict(windows)
    assert prediction.probabilities["gtzan"].shape == (11, 10)
    assert prediction.probabilities["msd"].shape == (11, len(MSD_TAGS))
    assert prediction.probabilities["genres"].shape == (11, len(SPEC.labels))
    assert prediction.embeddings is not None and prediction.embeddings.shape == (11, 16)
    np.testing.assert_allclose(prediction.probabilities["gtzan"].sum(axis=1), 1.0, atol=0.01)  # 1/256 steps
    # Parity with the float graph (int8 timbral front-end only; a random tiny net, so loose bounds).
    expected = {k: np.asarray(v) for k, v in tiny["model"](windows, training=False).items()}
    for name in ("gtzan", "msd", "genres"):
        difference = np.abs(prediction.probabilities[name] - expected[name])
        assert difference.mean() < 0.02 and difference.max() < 0.2, name
    same = prediction.probabilities["gtzan"].argmax(axis=1) == expected["gtzan"].argmax(axis=1)
    assert same.mean() >= 0.8
    # One window (a budget below the batch size) gives the same as within a batch.
    single = Classifier(card, batch_size=4).predict(windows[:1]).probabilities["gtzan"]
    np.testing.assert_allclose(single, prediction.probabilities["gtzan"][:1], atol=1e-5)


def test_msd_vocabulary_honours_each_tags_threshold(tiny: dict[str, Any]) -> None:
    card = json.loads(Path(tiny["card_path"]).read_text())
    card["heads"]["msd"]["thresholds"].update({"jazz": 0.6, "blues": 0.2})
    head = Head.from_dict("msd", card["heads"]["msd"])
    windows = np.zeros((3, len(head.labels)))
    windows[:, head.labels.index("jazz")] = 0.55  # highest score, below its own threshold
    windows[:, head.labels.index("blues")] = 0.25  # lower score, above its threshold
    result = aggregate(windows, head, top_k=3)
    assert result.ranked[0].label == "jazz"
    assert result.chosen == ("Blues",)
    windows[:, head.labels.index("jazz")] = 0.61
    assert aggregate(windows, head, top_k=3).chosen == ("Jazz", "Blues")
    assert aggregate(windows, head, top_k=1).chosen == ("Jazz",)
    assert aggregate(np.zeros((2, len(head.labels))), head).chosen == ()


def test_head_folding_and_selection() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    tracks = np.repeat(np.arange(12), 5)
    embedding = rng.normal(size=(60, 6)) + labels[:, None]
    table = WindowTable({"embedding": embedding, "taggram": rng.random((60, 50))}, labels, tracks,
                        np.ones(60, dtype=bool))  # fmt: skip
    selection = select(table, 3, (0.01, 1.0), ("embedding",), inner_folds=2)
    assert selection.feature_set == "embedding" and selection.c in (0.01, 1.0)
    head = fit_head(table, "embedding", 1.0, 3)
    kernel, bias = head.folded()
    logits = embedding @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(head.predict_proba(table), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    ids, means = track_probabilities(head.predict_proba(table), tracks)
    assert list(ids) == list(range(12)) and means.shape == (12, 3)


def test_spread_windows_are_the_taggers() -> None:
    logmel = np.arange(2000 * 96, dtype=np.float32).reshape(2000, 96)
    assert spread_windows(logmel, MUSICNN_FEATURES, 16) is None  # 10 windows: the whole grid
    chosen = spread_windows(logmel, MUSICNN_FEATURES, 2)
    assert chosen is not None and chosen.shape == (2, 187, 96)
    assert chosen[0, 0, 0] > 0 and chosen[1, -1, 0] < logmel[-1, 0]  # spread inside the clip


def _synthetic_prepared(per_genre: int = 4) -> Prepared:
    """Clip outputs whose embedding carries the genre, for the protocol code (no audio, no TensorFlow)."""
    rng = np.random.default_rng(2)
    clips, outputs = [], {}
    for g, genre in enumerate(GTZAN_GENRES):
        for n in range(per_genre):
            index = len(clips)
            clips.append(Clip(Path(f"/nowhere/{genre}/{genre}.{n:05d}.wav"), genre, f"{genre}/{genre}.{n:05d}", 1))

            def part(count: int, genre_index: int = g) -> WindowOutputs:
                embedding = rng.normal(size=(count, 200)).astype(np.float32)
                embedding[:, genre_index] += 3.0
                taggram = rng.uniform(0, 0.2, size=(count, 50)).astype(np.float32)
                return WindowOutputs(embedding, taggram)

            outputs[index] = ClipOutputs(grid=part(5), offset=part(4), spread={1: part(1), 2: part(2), 4: part(4)},
                                         frames=1000)  # fmt: skip
    dataset = Dataset(Path("/nowhere"), tuple(clips), GTZAN_GENRES)
    return Prepared(dataset, outputs, {}, None, "sha256:test", 0.0)  # type: ignore[arg-type]


def test_folds_thresholds_and_vocabulary_evidence_on_synthetic_outputs() -> None:
    prepared = _synthetic_prepared()
    config = TransferConfig(c_grid=(0.1,), feature_sets=("embedding",), inner_folds=2, budgets=(1, 2, 4))
    indices = list(range(len(prepared.dataset.clips)))
    test = indices[::4]
    train = [i for i in indices if i not in test]
    fold = fit_fold(prepared, config, "cv", "synthetic", train, test, budgets=True)
    assert fold.scores.tracks == len(test) and fold.scores.track_accuracy > 0.8
    assert set(fold.budgets) == {"1", "2", "4", "all"}
    without_rock = [i for i in train if prepared.dataset.clips[i].genre != "rock"]
    partial = fit_fold(prepared, config, "lists-3fold", "no rock", without_rock, test)
    assert partial.excluded == {"rock": 1} and len(partial.test) == len(test) - 1
    thresholds = choose_thresholds(prepared, config, [fold], [(train, test)])
    assert set(thresholds.msd) == set(config.msd_tags) and set(thresholds.gtzan) == set(config.vocabulary_gtzan)
    assert set(thresholds.genres) == set(config.msd_tags) | set(config.vocabulary_gtzan)
    evidence = vocabulary_evidence(prepared, config, [fold], thresholds)
    assert evidence["gtzan"]["clips"] == len(test) and 0 <= evidence["genres"]["right_rate"] <= 1


def test_the_shipped_form_is_float16_weights_at_parity(tiny: dict[str, Any], tmp_path: Path) -> None:
    import dataclasses

    config = TransferConfig()
    assert config.quantization == "float16-weights"
    path = tmp_path / "tiny16.tflite"
    names = convert_shipped(tiny["model"], config.quantization, tiny["windows"], path, config.calibration_windows)
    assert names == tiny["outputs"]  # the card's output names do not depend on the form
    card = dataclasses.replace(load_card(tiny["card_path"]), model_file=path)
    windows = tiny["windows"][:8]
    prediction = Classifier(card).predict(windows)
    expected = {k: np.asarray(v) for k, v in tiny["model"](windows, training=False).items()}
    for name in ("gtzan", "msd", "genres"):
        np.testing.assert_allclose(prediction.probabilities[name], expected[name], atol=0.03)  # a random tiny net
    with pytest.raises(ValueError, match="quantization"):
        convert_shipped(tiny["model"], "int4", tiny["windows"], path)
