"""`tagger similar` on real scanned tracks (tiny model, SQLite file), and the index against brute force."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import m3u8  # type: ignore[import-untyped]
import numpy as np
import pytest
import soundfile
from sqlalchemy import func, select
from typer.testing import CliRunner

from tagger.cli import app
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.similar import EmbeddingIndex
from tagger.store import Database, Result, Track
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.test_playlists import tag

pytestmark = [pytest.mark.model]
GENRES = ["drone", "techno", "chimes", "breaks", "organ"]
BENCH = Path(__file__).resolve().parents[1] / "bench" / "similar.py"


def quieter_copy(source: Path, target: Path, gain: float) -> Path:
    samples, rate = soundfile.read(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(target, samples * gain, rate, subtype="PCM_16")
    return target


@pytest.fixture
def library(tmp_path: Path, database: Database, tiny_card: ModelCard) -> dict[str, Path]:
    """Ten tracks of five kinds (two seeds each) in album folders, plus one clip twice: at full gain
    and at 0.7 (-3 dB), in two other folders. (At -12 dB the tiny test model, trained on these
    synthetic recipes only, finds other seeds of one recipe nearer; musicnn does too for these clips.)"""
    root = tmp_path / "music"
    tracks = {}
    for i in range(10):
        path = make_track(root / f"Album {i % 5}" / f"{i}.flac", GENRES[i % 5], 2.0, 16000, seed=i)
        tracks[f"t{i}"] = tag(path, album=f"Album {i % 5}", artist=f"Artist {i % 3}", title=f"T{i}")
    clip = make_track(root / "Loud" / "clip.flac", "techno", 2.0, 16000, seed=42)
    tracks["loud"] = clip
    tracks["quiet"] = quieter_copy(clip, root / "Quiet" / "clip.flac", 0.7)
    with Scanner(Library(database, tiny_card, TagOptions()), isolate=False) as scanner:
        list(scanner.scan([root]))
    return tracks


def similar(database: Database, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["similar", *args, "--db", database.url, "--model", str(TINY_CARD)])
    return result.exit_code, result.output


def rows(database: Database) -> tuple[int, int]:
    with database.session() as session:
        return session.scalar(select(func.count(Track.id))) or 0, session.scalar(select(func.count(Result.id))) or 0


def test_two_gains_of_one_clip_rank_each_other_first(library: dict[str, Path], database: Database) -> None:
    for query, other in (("loud", "quiet"), ("quiet", "loud")):
        code, output = similar(database, str(library[query]), "-n", "5", "--json")
        assert code == 0, output
        found = json.loads(output)
        assert found["scanned"] is True and found["tracks"] == 12
        paths = [n["path"] for n in found["neighbours"]]
        assert paths[0] == str(library[other]), paths
        assert str(library[query]) not in paths and len(paths) == 5
        similarities = [n["similarity"] for n in found["neighbours"]]
        assert similarities == sorted(similarities, reverse=True)


def test_a_file_never_scanned_is_classified_and_nothing_is_written(
    library: dict[str, Path], database: Database, tmp_path: Path
) -> None:
    outside = shutil.copy(library["loud"], tmp_path / "elsewhere.flac")
    before = rows(database)
    code, output = similar(database, str(outside), "-n", "3", "--json")
    assert code == 0, output
    found = json.loads(output)
    assert found["scanned"] is False
    assert [n["path"] for n in found["neighbours"]][:2] == [str(library["loud"]), str(library["quiet"])]
    assert found["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)  # the same audio, as stored
    assert rows(database) == before


def test_one_per_album_and_artist(library: dict[str, Path], database: Database) -> None:
    code, output = similar(database, str(library["t0"]), "--one-per", "album", "--json")
    assert code == 0, output
    paths = [Path(n["path"]) for n in json.loads(output)["neighbours"]]
    folders = [p.parent.name for p in paths]
    assert len(folders) == len(set(folders)) == 6  # Album 1-4, Loud, Quiet: Album 0 is the query's own
    assert "Album 0" not in folders  # its other track has another artist: still the same album (one folder)
    code, output = similar(database, str(library["t0"]), "--one-per", "artist", "--json")
    found = [Path(n["path"]) for n in json.loads(output)["neighbours"]]
    # Artists 1 and 2, and the two untagged clips (no artist: each its own); Artist 0 is the query's
    assert len(found) == 4 and {library["loud"], library["quiet"]} <= set(found)


def test_m3u_output_resolves(library: dict[str, Path], database: Database, tmp_path: Path) -> None:
    out = tmp_path / "lists" / "like clip.m3u8"
    out.parent.mkdir()
    code, output = similar(database, str(library["loud"]), "-n", "4", "--m3u", str(out), "--json")
    assert code == 0, output
    expected = [Path(n["path"]) for n in json.loads(output)["neighbours"]]
    parsed = m3u8.load(str(out))
    assert [(out.parent / s.uri).resolve() for s in parsed.segments] == expected
    assert all(not Path(s.uri).is_absolute() for s in parsed.segments)


def test_table_and_bad_input(library: dict[str, Path], database: Database, tmp_path: Path) -> None:
    code, output = similar(database, str(library["loud"]), "-n", "2")
    assert code == 0 and str(library["quiet"]) in output.splitlines()[1]
    code, output = similar(database, str(tmp_path / "missing.flac"))
    assert code == 1 and "no such file" in output and "Traceback" not in output
    not_audio = tmp_path / "notes.flac"
    not_audio.write_text("not audio")
    code, output = similar(database, str(not_audio))
    assert code == 1 and "Traceback" not in output and len(output.strip().splitlines()) == 1
    code, output = similar(database, str(library["loud"]), "--one-per", "label")
    assert code == 2 and "--one-per" in output


def test_an_empty_library_says_scan_first(tmp_path: Path, database: Database) -> None:
    clip = make_track(tmp_path / "a.flac", "drone", 1.0, 16000)
    code, output = similar(database, str(clip))
    assert code == 1 and "tagger scan" in output


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_similar", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_similar"] = module
    spec.loader.exec_module(module)
    return module


def test_index_equals_brute_force_on_a_real_database(bench: ModuleType, tmp_path: Path) -> None:
    db = bench.build_database(tmp_path / "b.db", 2000, dims=16, batch=300)
    index = EmbeddingIndex.load(db, bench.MODEL_ID)
    assert len(index) == 2000 and index.vectors.shape == (2000, 16)
    with db.session() as session:
        stored = {
            path: np.frombuffer(blob, np.float16).astype(np.float64)
            for path, blob in session.execute(select(Track.path, Result.embedding).join(Result))
        }
    query = next(iter(stored.values()))
    scores = {p: float(v @ query / np.linalg.norm(v) / np.linalg.norm(query)) for p, v in stored.items()}
    best = sorted(scores, key=lambda p: -scores[p])[:10]
    found = index.nearest(query, 10)
    assert [n.path for n in found] == best
    assert [n.similarity for n in found] == pytest.approx([scores[p] for p in best], abs=1e-5)
    by_folder = index.nearest(query, 5, key=lambda p: Path(p).parent)
    assert len({Path(n.path).parent for n in by_folder}) == 5
