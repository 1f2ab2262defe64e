"""`tagger report --html`: the page rendered by a real headless Chromium shows the numbers of `--format json`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tagger.tags import open_tags
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.mood_card import mood_card_path

pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def tagger(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "t.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    return subprocess.run(
        [sys.executable, "-m", "tagger.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def rendered_dom(page: Path, tmp_path: Path) -> str:
    """The DOM after the page's script ran, from a headless Chromium with a throw-away profile and no network."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (test.sh installs Debian chromium)")
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--proxy-server=127.0.0.1:9",  # any fetch the page tried would fail (it makes none)
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Rendered(HTMLParser):
    """What the script drew: the chart groups' data attributes and the tables' cells."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[dict[str, str]] = []
        self.rows: dict[str, list[dict[str, str]]] = {"uncertain": [], "failed": []}
        self.summary: dict[str, str] = {}
        self._row: dict[str, str] = {}
        self._cell: tuple[dict[str, str], str] | None = None
        self._span: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "g" and ("data-chart" in a or "data-folder" in a or "data-genre" in a):
            self.groups.append(a)
        if tag == "tr" and a.get("data-row") in self.rows:
            self._row = {}
            self.rows[a["data-row"]].append(self._row)
        if tag == "td" and "data-k" in a:
            self._cell = (self._row, a["data-k"])
        if tag == "span" and "data-k" in a:
            self._span = a["data-k"]

    def handle_endtag(self, tag: str) -> None:
        self._cell = None if tag == "td" else self._cell
        self._span = None if tag == "span" else self._span

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            row, key = self._cell
            row[key] = row.get(key, "") + data
        if self._span is not None:
            self.summary[self._span] = data.split(": ")[-1]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Tracks in two folders, one with the owner's genre (kept), one unreadable file, all scanned."""
    root = tmp_path / "music"
    open_tags(make_track(root / "owned" / "owner.flac", genre="techno", seconds=4.0)).write_genres(["Chanson"])
    make_track(root / "owned" / "a <b>.ogg", genre="drone", seconds=4.0, seed=1)  # markup in a name stays text
    make_track(root / "new" / "b.mp3", genre="chimes", seconds=4.0, seed=2)
    make_track(root / "new" / "c.wav", genre="breaks", seconds=4.0, seed=3)
    (root / "new" / "broken.flac").write_bytes(b"not audio at all" * 64)
    scanned = tagger("scan", str(root), "--model", str(TINY_CARD), "--workers", "1", "--json", tmp_path=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    return root


def test_the_rendered_page_shows_the_numbers_of_the_json_report(library: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    args = ("report", "--low-confidence-below", "1.01")  # every track listed as uncertain: the table is full
    data = json.loads(tagger(*args, "--format", "json", tmp_path=tmp_path).stdout)
    made = tagger(*args, "--html", str(page), tmp_path=tmp_path)
    assert made.returncode == 0 and f"wrote {page}" in made.stderr, made.stderr
    assert data["genres"] and data["proposed"] and data["failures"] and len(data["low_confidence"]) == 4

    text = page.read_text(encoding="utf-8")
    assert not re.search(r"\b(?:src|href)\s*=|@import|url\(", text)  # nothing to fetch: self-contained
    dom = rendered_dom(page, tmp_path)
    assert 'data-rendered="yes"' in dom  # the script ran to its end
    drawn = Rendered()
    drawn.feed(dom)

    def chart(name: str) -> list[dict[str, str]]:
        return [g for g in drawn.groups if g.get("data-chart") == name]

    assert [(g["data-genre"], int(g["data-tracks"]), int(g["data-ours"])) for g in chart("files")] == [
        (row["genre"], row["tracks"], row["ours"]) for row in data["genres"]
    ]
    assert ("Chanson", 1, 0) in [(g["data-genre"], int(g["data-tracks"]), int(g["data-ours"])) for g in chart("files")]
    assert [(g["data-genre"], int(g["data-tracks"])) for g in chart("model")] == [
        (row["genre"], row["tracks"]) for row in data["proposed"]
    ]
    assert [int(g["data-count"]) for g in chart("confidence")] == data["confidence_histogram"]
    folders: dict[str, dict[str, int]] = {}
    current = ""
    for g in drawn.groups:
        if "data-folder" in g:
            current = g["data-folder"]
            folders[current] = {}
        elif "data-chart" not in g:
            folders[current][g["data-genre"]] = int(g["data-tracks"])
    assert folders == data["folders"] and set(folders) == {"owned", "new"}
    assert drawn.rows["uncertain"] == [
        {"path": item["path"], "genre": item["genre"], "confidence": f"{item['confidence']:.2f}"}
        for item in data["low_confidence"]
    ]
    assert str(library / "owned" / "a <b>.ogg") in {row["path"] for row in drawn.rows["uncertain"]}
    assert [row["path"] for row in drawn.rows["failed"]] == [f["path"] for f in data["failures"] + data["tag_failures"]]
    assert {k: int(v) for k, v in drawn.summary.items()} == {
        k: data[k] for k in ("tracks", "classified", "failed", "tag_failed", "gone", "no_genre", "no_mood",
                             "moods_uncertain")
    }  # fmt: skip


def test_an_html_file_in_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = tagger("report", "--html", str(tmp_path / "nowhere" / "r.html"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such folder" and result.stdout == ""
    assert not (tmp_path / "t.db").exists()  # refused before the database was opened


def test_the_rendered_page_draws_the_mood_counts_of_the_json_report(tmp_path: Path) -> None:
    root = tmp_path / "music"
    for i, genre in enumerate(("techno", "drone", "chimes", "breaks", "organ")):
        make_track(root / f"{genre}.flac", genre=genre, seconds=4.0, seed=i)
    open_tags(root / "techno.flac").write({"mood": ["Melancholy"]})  # the owner's: kept
    card = mood_card_path(tmp_path / "model")
    scanned = tagger("scan", str(root), "--model", str(card), "--workers", "1", "--json", tmp_path=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    page = tmp_path / "report.html"
    data = json.loads(tagger("report", "--format", "json", tmp_path=tmp_path).stdout)
    made = tagger("report", "--html", str(page), tmp_path=tmp_path)
    assert made.returncode == 0, made.stderr
    # chimes and breaks are Happy, drone Sad, techno Aggressive, organ Relaxed
    assert {r["mood"]: r["tracks"] for r in data["proposed_moods"]} == {
        "Happy": 2,
        "Sad": 1,
        "Aggressive": 1,
        "Relaxed": 1,
    }
    assert {r["mood"]: (r["tracks"], r["ours"]) for r in data["moods"]} == {
        "Happy": (2, 2), "Melancholy": (1, 0), "Sad": (1, 1), "Relaxed": (1, 1)
    }  # fmt: skip

    drawn = Rendered()
    drawn.feed(rendered_dom(page, tmp_path))

    def chart(name: str) -> list[dict[str, str]]:
        return [g for g in drawn.groups if g.get("data-chart") == name]

    assert [(g["data-mood"], int(g["data-tracks"]), int(g["data-ours"])) for g in chart("mood-files")] == [
        (row["mood"], row["tracks"], row["ours"]) for row in data["moods"]
    ]
    assert [(g["data-mood"], int(g["data-tracks"])) for g in chart("mood-model")] == [
        (row["mood"], row["tracks"]) for row in data["proposed_moods"]
    ]
    assert int(drawn.summary["no_mood"]) == data["no_mood"] == 0 and int(drawn.summary["moods_uncertain"]) == 0
