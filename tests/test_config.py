"""Config values are checked (type and range) before anything runs: one line naming the key, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tagger.config import ConfigError, Settings, load_settings, resolve_settings
from tagger.policy import Policy

README = Path(__file__).parents[1] / "README.md"

BAD_CONFIGS = [
    ('workers = "two"', 'workers: expected an integer >= 1, got "two"'),
    ('top_k = "1"', 'top_k: expected an integer >= 1, got "1"'),
    ("watch = 5", "watch: expected a table of settings, got 5"),
    ('roots = "/srv/music"', 'roots: expected a list of strings, got "/srv/music"'),
    ('follow_symlinks = "no"', 'follow_symlinks: expected true or false, got "no"'),
    ("min_confidence = 7", "min_confidence: expected a number from 0 to 1, got 7"),
    ('min_confidence = "high"', 'min_confidence: expected a number from 0 to 1, got "high"'),
    ("max_windows = -1", "max_windows: expected an integer >= 1, got -1"),
    ("id3_version = 2", "id3_version: expected 3 or 4, got 2"),
    ('id3_separator = ""', 'id3_separator: expected a non-empty string, got ""'),
    ('album_mode = "album"', 'album_mode: expected "consensus" or "track", got "album"'),
    ("roots = [1]", "roots: expected a list of strings, got [1]"),
    ('policy = "kep"', 'policy: expected one of "keep", "overwrite", "merge", got "kep"'),
    ("workers = true", "workers: expected an integer >= 1, got true"),
    ("db = 1979-05-27", 'db: expected a string, got "1979-05-27"'),
    ("[watch]\nquiet_seconds = -1", "watch.quiet_seconds: expected a number >= 0, got -1"),
    ('[watch]\npolling = "yes"', 'watch.polling: expected true or false, got "yes"'),
    ('moods = "off"', 'moods: expected true or false, got "off"'),
    ('mood_vocabulary = ""', 'mood_vocabulary: expected a non-empty string, got ""'),
]

BAD_FLAGS = [
    (["--workers", "0"], "--workers: expected an integer >= 1, got 0"),
    (["--top-k", "0"], "--top-k: expected an integer >= 1, got 0"),
    (["--min-confidence", "7"], "--min-confidence: expected a number from 0 to 1, got 7.0"),
    (["--max-windows", "-1"], "--max-windows: expected an integer >= 1, got -1"),
    (["--album-mode", "albums"], '--album-mode: expected "consensus" or "track", got "albums"'),
]


def tagger(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAGGER_DB": str(tmp_path / "t.db"), "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    command = [sys.executable, "-m", "tagger.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], message: str, tmp_path: Path) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(message), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "t.db").exists()  # refused before the database was opened


@pytest.mark.parametrize(("toml", "message"), BAD_CONFIGS, ids=[t for t, _ in BAD_CONFIGS])
def test_a_bad_config_value_is_one_line_and_exit_2(toml: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml + "\n")
    (tmp_path / "music").mkdir()
    paths = [] if toml.startswith("roots") else [str(tmp_path / "music")]
    result = tagger("scan", *paths, "--config", str(config), tmp_path=tmp_path)
    assert_one_clear_line(result, f"{config}: {message}", tmp_path)


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[f[0] for f, _ in BAD_FLAGS])
def test_a_bad_flag_value_is_checked_the_same_way(flags: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "music").mkdir()
    result = tagger("scan", str(tmp_path / "music"), *flags, tmp_path=tmp_path)
    assert_one_clear_line(result, message, tmp_path)


def test_a_bad_runtime_in_the_environment_is_named(tmp_path: Path) -> None:
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    env = {**os.environ, "TAGGER_TFLITE_RUNTIME": "tflite", "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    result = subprocess.run(
        [sys.executable, "-m", "tagger.cli", "classify", str(wav)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "TAGGER_TFLITE_RUNTIME: expected one of ai-edge-litert, tflite-runtime, tensorflow, got 'tflite'" in (
        result.stderr
    )


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    toml = re.search(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert toml is not None
    config = tmp_path / "config.toml"
    config.write_text(toml.group(1))
    settings = load_settings(config)
    assert settings.roots == ("/srv/music",) and settings.policy is Policy.KEEP
    assert (settings.min_confidence, settings.top_k, settings.workers, settings.max_windows) == (0.3, 1, 2, 8)
    assert settings.watch.quiet_seconds == 5.0 and settings.watch.polling is False


def test_an_override_keeps_the_checked_types() -> None:
    settings = Settings().override(policy="merge", min_confidence=1, workers=None)
    assert settings.policy is Policy.MERGE and settings.min_confidence == 1.0 and settings.workers == 1
    with pytest.raises(ConfigError, match=re.escape("--quiet-seconds: expected a number >= 0, got -2.0")):
        settings.override(watch=replace(settings.watch, quiet_seconds=-2.0))


def test_the_command_line_goes_on_top_of_the_file_inside_its_tables(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('top_k = 3\n[watch]\nquiet_seconds = 9.0\nreconcile_hours = 12.0\n[genres]\nignore = ["Pop"]\n')
    settings = resolve_settings(
        config,
        allow=["Jazz"],
        tables={"watch": {"quiet_seconds": 1.5, "polling": None}, "playlists": {"by": "album-genre"}},
        top_k=None,
        workers=2,
    )
    assert (settings.top_k, settings.workers) == (3, 2)  # a flag left unset keeps the file's value
    assert (settings.watch.quiet_seconds, settings.watch.reconcile_hours) == (1.5, 12.0)  # the table's rest stays
    assert settings.watch.polling is False
    assert settings.playlists.by == "album-genre"
    assert (settings.genres.allow, settings.genres.ignore) == (("Jazz",), ("Pop",))
    with pytest.raises(ConfigError, match="--quiet-seconds: expected a number >= 0"):
        resolve_settings(config, tables={"watch": {"quiet_seconds": -1.0}})
