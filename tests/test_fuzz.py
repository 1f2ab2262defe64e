"""Fuzzing the decode and tag-reading path with mutated real files: only recorded errors, never a hang."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model, pytest.mark.slow]

TEMPLATES = (".flac", ".mp3", ".ogg", ".opus", ".wav", ".m4a")
PER_FILE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("fuzz-templates")
    files = {}
    for extension in TEMPLATES:
        rate = 48000 if extension == ".opus" else 24000
        path = make_track(root / f"t{extension}", seconds=2.0, sample_rate=rate)
        files[extension] = path.read_bytes()
    return files


def _probe_file(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a child process: the scan's decode + tag-read path; report what came back, never raise."""
    from tagger.analysis import analyse_safely
    from tagger.errors import FileError
    from tagger.model import Classifier, load_card
    from tagger.tags import open_tags

    analysed = analyse_safely(Path(path), Classifier(load_card(TINY_CARD)), max_windows=4)
    try:
        open_tags(path).read_genres()
        tags = "ok"
    except FileError as error:
        tags = type(error).__name__
    out.put((type(analysed).__name__, getattr(analysed, "reason", ""), tags))


mutation = st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extension=st.sampled_from(TEMPLATES),
    flips=mutation,
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
    head_bias=st.booleans(),
)
def test_mutated_files_give_results_or_recorded_errors(
    templates: dict[str, bytes],
    tmp_path: Path,
    extension: str,
    flips: list[tuple[float, int]],
    cut: float | None,
    head_bias: bool,
) -> None:
    data = bytearray(templates[extension])
    for position, value in flips:
        # Headers and tags are where parsers get hurt: bias half the examples to the first 4 KiB.
        limit = min(len(data), 4096) if head_bias else len(data)
        data[int(position * (limit - 1))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"fuzzed{extension}"
    path.write_bytes(bytes(data))
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_probe_file, args=(str(path), out))
    child.start()
    child.join(PER_FILE_TIMEOUT)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, f"hung on {extension} mutated {flips} cut {cut}"
    assert child.exitcode == 0, f"crashed ({child.exitcode}) on {extension} mutated {flips} cut {cut}"
    analysed, reason, tags = out.get(timeout=5)
    assert analysed in ("TrackAnalysis", "DecodeError", "FileError"), (analysed, reason)
    assert tags in ("ok", "TagReadError", "UnsupportedFormatError"), tags
    if analysed != "TrackAnalysis":
        assert reason and "unexpected" not in reason, reason  # an error that says what was wrong
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
