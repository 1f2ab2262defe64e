"""The typer CLI, run as a user would (in-process runner, and one real subprocess)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tagger.tags import open_tags
from tests.audio_factory import ALL_EXTENSIONS
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model, pytest.mark.ffmpeg]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"TAGGER_DB": str(tmp_path / "cli.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def music(format_library: Path, tmp_path: Path) -> Path:
    root = tmp_path / "music"
    shutil.copytree(format_library, root / "album")
    return root


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_scan_report_restore_round_trip(music: Path, env: dict[str, str]) -> None:
    summary = json.loads(invoke("scan", str(music), "--model", str(TINY_CARD), "--json"))
    assert summary["counts"] == {"tagged": len(ALL_EXTENSIONS)}
    assert json.loads(invoke("scan", str(music), "--model", str(TINY_CARD), "--json"))["counts"] == {
        "skipped": len(ALL_EXTENSIONS)
    }

    report = json.loads(invoke("report", "--format", "json"))
    assert report["tracks"] == report["classified"] == len(ALL_EXTENSIONS)
    written = [open_tags(p).read_genres()[0] for p in sorted((music / "album").iterdir())]
    assert {row["genre"]: row["tracks"] for row in report["genres"]} == {g: written.count(g) for g in set(written)}
    assert report["folders"] == {"album": {g: written.count(g) for g in set(written)}} or set(report["folders"]) == {
        "album"
    }
    rows = list(csv.DictReader(io.StringIO(invoke("report", "--format", "csv"))))
    assert sum(int(r["tracks"]) for r in rows if r["folder"] == "*" and r["kind"] == "model") == len(ALL_EXTENSIONS)
    assert sum(int(r["tracks"]) for r in rows if r["folder"] == "*" and r["kind"] == "file") == len(ALL_EXTENSIONS)
    text = invoke("report")
    assert "genres in the files now" in text and "genres the model proposed" in text

    dry = invoke("restore", str(music), "--dry-run")
    assert f"would restore {len(ALL_EXTENSIONS)}, 0 left" in dry and " restored," not in dry
    assert [open_tags(p).read_genres()[0] for p in sorted((music / "album").iterdir())] == written  # untouched
    assert f"{len(ALL_EXTENSIONS)} restored" in invoke("restore", str(music))  # the dry run marked nothing
    assert all(open_tags(p).read_genres() == [] for p in (music / "album").iterdir())


def test_dry_run_prints_existing_to_proposed(music: Path, env: dict[str, str]) -> None:
    flac = next((music / "album").glob("*.flac"))
    open_tags(flac).write_genres(["Chanson"])
    output = invoke("scan", str(music), "--model", str(TINY_CARD), "--dry-run", "--policy", "overwrite")
    assert "Chanson -> " in output
    assert open_tags(flac).read_genres() == ["Chanson"]


def test_classify_json_has_genres_and_a_window_timeline(format_library: Path, env: dict[str, str]) -> None:
    path = next(format_library.glob("*.mp3"))
    before = path.read_bytes()
    data = json.loads(invoke("classify", str(path), "--model", str(TINY_CARD), "--json", "--top-k", "3"))
    assert len(data["genres"]) == 3
    assert data["genres"][0]["confidence"] >= data["genres"][1]["confidence"] >= data["genres"][2]["confidence"]
    assert len(data["windows"]) >= 5 and data["windows"][0]["start"] == 0.0
    assert data["vocabularies"] == ["synthetic"]
    assert path.read_bytes() == before
    assert "timeline" in invoke("classify", str(path), "--model", str(TINY_CARD))


def test_errors_are_clear_and_exit_non_zero(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["scan", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    text = tmp_path / "notes.flac"
    text.write_text("hello")
    bad = runner.invoke(app, ["classify", str(text), "--model", str(TINY_CARD)])
    assert bad.exit_code == 1 and "notes.flac" in bad.output and "not an audio file" in bad.output
    nope = runner.invoke(app, ["classify", str(tmp_path / "nope.mp3"), "--model", str(TINY_CARD)])
    assert nope.exit_code == 1 and nope.output.splitlines() == [f"error: {tmp_path / 'nope.mp3'}: no such file"]
    no_model = runner.invoke(app, ["classify", str(text), "--model", "nonesuch"])
    assert no_model.exit_code == 1 and "no model card" in no_model.output


def test_a_corrupt_model_file_stops_scan_and_watch_with_its_reason(
    music: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    card = tmp_path / "broken.json"
    card.write_text(TINY_CARD.read_text())
    (tmp_path / "tiny.tflite").write_bytes(TINY_CARD.with_suffix(".tflite").read_bytes()[:5000])  # truncated
    before = {p: p.read_bytes() for p in (music / "album").iterdir()}
    runner = CliRunner()
    for command in (["scan", str(music), "--workers", "2"], ["watch", str(music)]):
        result = runner.invoke(app, [*command, "--model", str(card)])
        assert result.exit_code == 1, result.output
        message = result.output if command[0] == "scan" else result.stderr
        assert "cannot load model file" in message and "tiny.tflite" in message
        assert "Traceback" not in message
    assert {p: p.read_bytes() for p in (music / "album").iterdir()} == before


def test_config_file_sets_defaults_and_flags_override(music: Path, tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'roots = ["{music}"]\nmodel = "{TINY_CARD}"\nmin_confidence = 1.0\n')
    low = json.loads(invoke("scan", "--config", str(config), "--json"))
    assert low["counts"] == {"low-confidence": len(ALL_EXTENSIONS)}
    tagged = json.loads(invoke("scan", "--config", str(config), "--json", "--force", "--min-confidence", "0"))
    assert tagged["counts"] == {"tagged": len(ALL_EXTENSIONS)}
    config.write_text("polcy = 'keep'\n")
    typo = CliRunner().invoke(app, ["scan", "--config", str(config)])
    assert typo.exit_code == 2 and "unknown setting(s) polcy" in typo.output


def test_console_script_runs_as_a_subprocess(format_library: Path, env: dict[str, str]) -> None:
    path = next(format_library.glob("*.wav"))
    command = [sys.executable, "-m", "tagger.cli", "classify", str(path), "--model", str(TINY_CARD), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(path)


def test_scan_with_recording_processes_tags_and_reports_as_a_scan_alone(music: Path, env: dict[str, str]) -> None:
    """`tagger scan --recording-processes 2`, a real command with its real recording processes: every file tagged with
    its genre, the summary's counts; a rescan skips them all."""
    scan = [sys.executable, "-m", "tagger.cli", "scan", str(music), "--model", str(TINY_CARD), "--json"]
    environ = {**os.environ, **env}
    result = subprocess.run([*scan, "--recording-processes", "2"], capture_output=True, text=True, env=environ,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"tagged": len(ALL_EXTENSIONS)}
    for path in (music / "album").iterdir():
        assert open_tags(path).read_genres() == [path.name.split("-")[0]]
    rescan = subprocess.run(scan, capture_output=True, text=True, env=environ, timeout=300)
    assert json.loads(rescan.stdout)["counts"] == {"skipped": len(ALL_EXTENSIONS)}


def _run_with_stderr_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Runs ``command`` with stdout a pipe and stderr a pseudo-terminal: (exit status, stdout, terminal)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, env=env, text=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the child
        with contextlib.suppress(OSError):  # EIO once the child has closed its end
            while chunk := os.read(master, 65536):
                chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = process.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, out, b"".join(chunks).decode(errors="replace")


def test_scan_prints_tracks_and_summary_on_stdout_and_progress_on_a_terminal_only(
    music: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """`scan > log` keeps every line; the progress bar is drawn on stderr only when that is a terminal."""
    second = tmp_path / "second"
    shutil.copytree(music, second)
    environ = {**os.environ, **env, "TERM": "xterm"}
    scan = [sys.executable, "-m", "tagger.cli", "scan", "--model", str(TINY_CARD), "--workers", "1"]

    piped = subprocess.run([*scan, str(music)], capture_output=True, text=True, env=environ, timeout=300)
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stdout.splitlines() if line.lstrip().startswith("tagged ")]
    assert len(lines) == len(ALL_EXTENSIONS) and "scan summary" in piped.stdout, piped.stdout
    assert "scanning" not in piped.stderr and "\x1b[" not in piped.stderr + piped.stdout  # no bar, no escapes

    status, out, terminal = _run_with_stderr_on_a_terminal([*scan, str(second)], environ)
    assert status == 0, terminal
    assert "listing" in terminal or "scanning" in terminal, terminal  # the bar was drawn there
    assert len([line for line in out.splitlines() if line.lstrip().startswith("tagged ")]) == len(ALL_EXTENSIONS)
    assert "scan summary" in out and "scan summary" not in terminal and "tagged " not in terminal


def test_scan_lines_show_confidence_quiet_keeps_only_summary_and_failures(
    music: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """Through the real command: `tagged  PATH  (none) -> GENRE 0.97`; --quiet prints the summary and failures."""
    second = tmp_path / "second"
    shutil.copytree(music, second)
    (second / "album" / "broken.mp3").write_bytes(b"not audio at all" * 64)
    environ = {**os.environ, **env}
    scan = [sys.executable, "-m", "tagger.cli", "scan", "--model", str(TINY_CARD), "--workers", "1"]
    loud = subprocess.run([*scan, str(music)], capture_output=True, text=True, env=environ, timeout=300)
    assert loud.returncode == 0, loud.stderr
    for extension in ALL_EXTENSIONS:
        path = next((music / "album").glob(f"*{extension}"))
        genre = path.name.split("-")[0]
        line = next(line for line in loud.stdout.splitlines() if f"  {path}  " in line)
        head, confidence = line.rsplit(" ", 1)
        assert head == f"   tagged  {path}  (none) -> {genre}" and 0.5 < float(confidence) <= 1.0, line
    quiet = subprocess.run([*scan, "--quiet", str(second)], capture_output=True, text=True, env=environ, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert [line for line in quiet.stdout.splitlines() if line.lstrip().startswith("tagged ")] == []
    assert "scan summary" in quiet.stdout and f"failed {second / 'album' / 'broken.mp3'}: " in quiet.stdout


def test_progress_says_the_model_is_loading_and_shows_the_current_file(music: Path, env: dict[str, str]) -> None:
    environ = {**os.environ, **env, "TERM": "xterm", "COLUMNS": "200"}
    scan = [sys.executable, "-m", "tagger.cli", "scan", "--model", str(TINY_CARD), "--workers", "1", str(music)]
    status, _, terminal = _run_with_stderr_on_a_terminal(scan, environ)
    assert status == 0, terminal
    assert "loading model…" in terminal, terminal  # drawn while the worker pool starts
    assert any(path.name in terminal for path in (music / "album").iterdir()), terminal


def test_help_shows_every_default() -> None:
    environ = {**os.environ, "COLUMNS": "250", "TERM": "dumb"}
    shown = {
        command: subprocess.run(
            [sys.executable, "-m", "tagger.cli", command, "--help"], capture_output=True, text=True, env=environ
        ).stdout
        for command in ("scan", "classify", "watch")
    }
    assert "Genres written per track at most [default: (config, else 1)]" in shown["scan"], shown["scan"]
    assert "[default: ($TAGGER_DB, else XDG data dir)]" in shown["scan"]
    assert "Folders or files [default: (roots from the config)]" in shown["scan"]
    assert "keep: never replace the owner's genre [default: (config, else keep)]" in shown["scan"]
    assert "Genres listed [default: 5]" in shown["classify"]
    assert "[default: (config, else 5.0)]" in shown["watch"]
