"""Shared fixtures: generated audio in every format, the tiny model, a fresh database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagger.model import ModelCard, load_card
from tagger.store import Database
from tests.audio_factory import ALL_EXTENSIONS, have_ffmpeg, make_track
from tests.servers import MariaDBServer, PostgresServer, mariadb_bin, mariadb_server, postgres_bin, postgres_server

FIXTURE_MODELS = Path(__file__).parent / "fixtures" / "models"
TINY_CARD = FIXTURE_MODELS / "tiny.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not have_ffmpeg():
        skip = pytest.mark.skip(reason="ffmpeg not installed (.ci/run installs it)")
        for item in items:
            if "ffmpeg" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_card() -> ModelCard:
    return load_card(TINY_CARD)


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(tmp_path / "state" / "tagger.db")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL server for the whole session (127.0.0.1, a free port)."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (test.sh installs Debian postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the [postgres] extra)")
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """One throw-away MariaDB server for the whole session (127.0.0.1, a free port)."""
    if mariadb_bin() is None:
        pytest.skip("MariaDB is not installed (test.sh installs Debian mariadb-server)")
    pytest.importorskip("pymysql", reason="PyMySQL is not installed (the [mysql] extra)")
    with mariadb_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine the README promises: a SQLite file, PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'tagger.db'}"
    server: PostgresServer | MariaDBServer = request.getfixturevalue(
        "postgres" if request.param == "postgresql" else "mariadb"
    )
    return server.create_database()


@pytest.fixture
def any_database(db_url: str) -> Iterator[Database]:
    """``database`` on every engine (store, scan, concurrency and migration tests)."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def format_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic track per supported format, named ``<genre>-<n>.<ext>`` (a template: copy before writing)."""
    root = tmp_path_factory.mktemp("formats")
    genres = ["drone", "techno", "chimes", "breaks", "organ"]
    for i, extension in enumerate(ALL_EXTENSIONS):
        genre = genres[i % len(genres)]
        make_track(root / f"{genre}-{i}{extension}", genre=genre, seconds=6.0, seed=i)
    return root


@pytest.fixture
def library_copy(format_library: Path, tmp_path: Path) -> Path:
    """A copy of ``format_library`` to write into."""
    root = tmp_path / "music"
    shutil.copytree(format_library, root)
    return root
