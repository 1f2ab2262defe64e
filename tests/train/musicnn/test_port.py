"""The Keras MSD_musicnn port against the authors' own checkpoint, graph, labels and features."""

from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.train]

tf = pytest.importorskip("tensorflow")

from tagger.train.musicnn import layouts, pretrained  # noqa: E402
from tagger.train.musicnn import port as musicnn  # noqa: E402

_LOCAL_WHEEL = Path("/tmp/musicnn") / pretrained.WHEEL_NAME  # a copy some machines hold
# The shipped file against the float port on random windows: float16 weights measured 0.4% and 0.005 (int8 4%)
EMBEDDING_RELATIVE_ERROR_MAX = 0.02
TAGGRAM_ABS_ERROR_MAX = 0.02


def _wheel() -> Path | None:
    """The musicnn wheel: named by $TAGGER_MUSICNN_DIR, cached/downloaded, or a local copy."""
    configured = os.environ.get(pretrained.ENV_DIR, "")
    if configured.endswith(".whl") and Path(configured).is_file():
        return Path(configured)
    try:
        return pretrained.download_wheel()
    except pretrained.PretrainedNotFound:
        return _LOCAL_WHEEL if _LOCAL_WHEEL.is_file() else None


@pytest.fixture(scope="module")
def wheel() -> Path:
    found = _wheel()
    if found is None:
        pytest.skip("musicnn wheel not found and not downloadable")
    return found


@pytest.fixture(scope="module")
def prefix(wheel: Path) -> str:
    try:
        return pretrained.locate_checkpoint(download=True)
    except pretrained.PretrainedNotFound:
        return pretrained.extract_checkpoint(wheel, pretrained.cache_dir())


@pytest.fixture(scope="module")
def loaded(prefix: str) -> tuple[Any, musicnn.LoadReport]:
    model = musicnn.build_musicnn()
    return model, musicnn.load_checkpoint_weights(model, prefix)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    # Fixed inputs in the range of real log10(1 + 10⁴·mel) features (0 … ~6).
    rng = np.random.default_rng(20190704)
    return np.abs(rng.normal(1.0, 1.2, size=(6, musicnn.N_FRAMES, musicnn.N_MELS))).astype(np.float32)


def test_labels_match_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("musicnn/configuration.py").decode()
    assignment = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MSD_LABELS"
    )
    assert tuple(ast.literal_eval(assignment.value)) == pretrained.MSD_LABELS
    assert len(pretrained.MSD_LABELS) == musicnn.N_TAGS == len(set(pretrained.MSD_LABELS))


def test_extract_takes_only_the_msd_musicnn_files(wheel: Path, tmp_path: Path) -> None:
    prefix = pretrained.extract_checkpoint(wheel, tmp_path)
    assert prefix == str((tmp_path / "MSD_musicnn").resolve()) + "/"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MSD_musicnn"]  # no other model, no code
    assert {".index", ".data-00000-of-00001", ".meta"} <= {p.name for p in (tmp_path / "MSD_musicnn").iterdir()}


def test_env_var_wins(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pretrained.ENV_DIR, prefix)
    assert pretrained.locate_checkpoint(download=False) == prefix
    monkeypatch.setenv(pretrained.ENV_DIR, str(Path(prefix).parent))  # the folder above also works
    assert pretrained.locate_checkpoint(download=False) == prefix


def test_every_checkpoint_variable_is_used_once(loaded: tuple[Any, musicnn.LoadReport], prefix: str) -> None:
    model, report = loaded
    names = pretrained.open_checkpoint(prefix).get_variable_to_shape_map()
    model_variables = {n for n in names if "Adam" not in n and n not in ("beta1_power", "beta2_power")}
    used = [ckpt for _, ckpt, _ in report.assigned]
    assert sorted(used) == sorted(model_variables)  # each exactly once
    assert len(used) == len(set(used)) == len(model.weights) == 64
    assert set(report.ignored) == set(names) - model_variables
    for _, ckpt, shape in report.assigned:
        stored = tuple(names[ckpt])
        assert stored == shape or (len(stored) == 4 and stored[2] == 1 and stored[:2] + stored[3:] == shape)
    assert report.parameters == model.count_params() == 792_079


def test_mismatched_model_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="shape"):
        musicnn.load_checkpoint_weights(musicnn.build_musicnn(midend_filters=32), prefix)


def test_outputs_equal_the_authors_graph(
    loaded: tuple[Any, musicnn.LoadReport], prefix: str, windows: np.ndarray
) -> None:
    model, _ = loaded
    ours = model(windows, training=False)
    taggram, embedding = pretrained.reference_outputs(prefix, windows)
    assert taggram.shape == (len(windows), 50) and embedding.shape == (len(windows), 200)
    np.testing.assert_allclose(np.asarray(ours["taggram"]), taggram, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours["embedding"]), embedding, atol=1e-4, rtol=1e-5)
    assert taggram.std() > 0.01  # not a degenerate comparison


def test_integer_friendly_layout_computes_the_same(loaded: tuple[Any, musicnn.LoadReport], windows: np.ndarray) -> None:
    model, _ = loaded
    ours, theirs = model(windows, training=False), layouts.integer_friendly(model)(windows, training=False)
    np.testing.assert_allclose(np.asarray(theirs["taggram"]), np.asarray(ours["taggram"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(theirs["embedding"]), np.asarray(ours["embedding"]), atol=1e-4)


def test_features_match_musicnns_librosa_extractor() -> None:
    librosa = pytest.importorskip("librosa")
    from tagger.features import log_mel

    params = musicnn.MUSICNN_FEATURES
    rng = np.random.default_rng(3)
    t = np.arange(3 * params.sample_rate) / params.sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = log_mel(audio, params)
    theirs = librosa.feature.melspectrogram(
        y=audio, sr=params.sample_rate, hop_length=params.hop_length, n_fft=params.n_fft, n_mels=params.n_mels
    ).T
    theirs = np.log10(10000 * theirs + 1)
    # librosa centres frames (pads n_fft/2 each side): our frame j is its frame j + 1.
    assert theirs.shape[0] == ours.shape[0] + 2
    np.testing.assert_allclose(ours, theirs[1:-1], atol=1e-4)


def test_int8_conversion_keeps_a_dynamic_batch(
    loaded: tuple[Any, musicnn.LoadReport], windows: np.ndarray, tmp_path: Path
) -> None:
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    from tagger.train.musicnn.zero_shot import convert_int8, tflite_predictor

    model, _ = loaded
    path = convert_int8(model, windows[:4], tmp_path / "musicnn_int8.tflite")
    interpreter = interpreter_module.Interpreter(model_path=str(path))
    (given,) = interpreter.get_input_details()
    assert given["dtype"] == np.int8 and list(given["shape_signature"]) == [-1, 187, 96]
    assert interpreter.get_signature_list()["serving_default"]["outputs"] == ["embedding", "taggram"]
    interpreter.resize_tensor_input(given["index"], [3, 187, 96])
    interpreter.allocate_tensors()
    taggram = tflite_predictor(path)(windows)  # batch of 6 through the tagger's Classifier
    assert taggram.shape == (6, 50)
    expected = np.asarray(model(windows, training=False)["taggram"])
    assert np.abs(taggram - expected).mean() < 0.05  # int8, calibrated on these very windows


@pytest.mark.parametrize(("timbral", "temporal"), [("fc", "fc"), ("conv", "dilated")])
def test_fast_layout_computes_the_same(
    loaded: tuple[Any, musicnn.LoadReport], windows: np.ndarray, timbral: str, temporal: str
) -> None:
    model, _ = loaded
    ours, fast = model(windows, training=False), layouts.fast_layout(model, timbral, temporal)(windows)
    np.testing.assert_allclose(np.asarray(fast["taggram"]), np.asarray(ours["taggram"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(fast["embedding"]), np.asarray(ours["embedding"]), atol=1e-4)


def test_fast_layout_refuses_an_unknown_formulation(loaded: tuple[Any, musicnn.LoadReport]) -> None:
    with pytest.raises(ValueError, match="timbral formulation"):
        layouts.fast_layout(loaded[0], timbral="winograd")


def test_fast_layout_as_float_tflite_computes_the_same(
    loaded: tuple[Any, musicnn.LoadReport], windows: np.ndarray, tmp_path: Path
) -> None:
    """The TFLite ops the converter makes of the layout (strided slices, 1x1 convolutions, pools) are exact."""
    pytest.importorskip("ai_edge_litert.interpreter")
    from tagger.train.convert import float_tflite, write
    from tagger.train.musicnn.zero_shot import tflite_predictor

    model, _ = loaded
    path = tmp_path / "fast.float.tflite"
    write(float_tflite(layouts.fast_layout(model)), path)
    expected = model(windows, training=False)
    for output, atol in (("taggram", 1e-5), ("embedding", 1e-4)):
        np.testing.assert_allclose(tflite_predictor(path, output)(windows), np.asarray(expected[output]), atol=atol)


def test_the_shipped_file_stays_close_to_the_float_port(loaded: tuple[Any, musicnn.LoadReport]) -> None:
    """The shipped musicnn file (int8 timbral front-end) against the float Keras port on random windows in the
    range of real features; the parity on real clips is in the card."""
    pytest.importorskip("ai_edge_litert.interpreter")
    from tagger.model import MODELS_DIR, Classifier, load_card
    from tagger.train.musicnn.zero_shot import tflite_predictor

    if not (MODELS_DIR / "musicnn.json").exists():
        pytest.skip("musicnn model not shipped")
    model, _ = loaded
    rng = np.random.default_rng(14)
    windows = np.abs(rng.normal(1.0, 1.2, size=(16, musicnn.N_FRAMES, musicnn.N_MELS))).astype(np.float32)
    expected = model(windows, training=False)
    card = load_card("musicnn")
    embedding = Classifier(card).predict(windows).embeddings
    assert embedding is not None
    reference = np.asarray(expected["embedding"])
    assert np.linalg.norm(embedding - reference) / np.linalg.norm(reference) < EMBEDDING_RELATIVE_ERROR_MAX
    taggram = tflite_predictor(card.model_file, "taggram")(windows)
    assert np.abs(taggram - np.asarray(expected["taggram"])).max() < TAGGRAM_ABS_ERROR_MAX
