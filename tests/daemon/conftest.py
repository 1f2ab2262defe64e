"""Fixtures of the daemon tests: a watched root, a staging folder outside it, a library on a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.store import Database


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    return root


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    """Outside the watched root: files are made here, then copied or moved in."""
    folder = tmp_path / "staging"
    folder.mkdir()
    return folder


@pytest.fixture
def library(database: Database, tiny_card: ModelCard) -> Library:
    return Library(database, tiny_card, TagOptions())
