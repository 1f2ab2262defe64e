"""`tagger classify FILE --plot PNG`: a real PNG of the window timeline, drawn by matplotlib."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tagger(*args: str, tmp_path: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "t.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "tagger.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_writes_a_png_of_the_timeline(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the [plot] extra)")
    track = make_track(tmp_path / "drone.flac", genre="drone", seconds=20.0)
    before = track.read_bytes()
    png = tmp_path / "timeline.png"
    result = tagger("classify", str(track), "--model", str(TINY_CARD), "--plot", str(png), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote {png}" in result.stderr and "timeline" in result.stdout
    assert png.stat().st_size > 10_000  # lines, axes and a legend, not an empty canvas
    assert png_size(png) == (1000, 400)  # figsize 10 x 4 in at 100 dpi
    assert track.read_bytes() == before  # the track is not modified
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".timeline")] == []  # no temp file left


def test_plot_without_matplotlib_is_one_line(tmp_path: Path) -> None:
    """A second process where `import matplotlib` fails, as where the [plot] extra is not installed."""
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    track = make_track(tmp_path / "drone.wav", genre="drone", seconds=3.0)
    png = tmp_path / "timeline.png"
    result = tagger(
        "classify", str(track), "--model", str(TINY_CARD), "--plot", str(png),
        tmp_path=tmp_path, pythonpath=str(blocker.parent),
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'genre-tagger[plot]'"
    assert not png.exists()


def test_plot_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the [plot] extra)")
    track = make_track(tmp_path / "drone.wav", genre="drone", seconds=3.0)
    result = tagger("classify", str(track), "--plot", str(tmp_path / "no" / "t.png"), tmp_path=tmp_path)
    assert result.returncode == 1 and result.stderr.strip() == f"error: {tmp_path / 'no'}: no such folder"
