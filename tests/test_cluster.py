"""Scans on a Dask cluster: a real ``LocalCluster`` of 2 worker processes, reached over TCP as a remote scheduler
is, and a real PostgreSQL server; the recorder is this process, as in ``tagger scan --cluster``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="Dask distributed is not installed (the [cluster] extra)")

import dask
from distributed import Client, LocalCluster
from sqlalchemy import select

from tagger.cluster.dispatch import LOCAL_CLUSTER, LOCAL_SCHEDULER, ClusterBackend, connect
from tagger.cluster.paths import PathMap
from tagger.errors import ClusterError
from tagger.model import ModelCard
from tagger.record import Library
from tagger.scan import Scanner, ScanSummary
from tagger.store import Database, Result, TagWrite, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD
from tests.sabotage import sabotaged_cluster_analyse
from tests.servers import PostgresServer

pytestmark = [pytest.mark.model]

GENRES = ["drone", "techno", "chimes", "breaks", "organ"]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One cluster for the module (starting one takes seconds): 2 worker processes, one thread each."""
    with dask.config.set(LOCAL_SCHEDULER):
        # silence_logs as `local:N` does: the scheduler's thread would log its clients' goodbyes into a stream
        # pytest has closed by then ("--- Logging error ---" in the test output)
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL
        )
    with cluster, dask.config.set(LOCAL_CLUSTER):  # as `local:N`: a worker slow to restart keeps its nanny
        yield cluster.scheduler_address


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.create_database()


def make_library(root: Path, tracks: int = 6) -> Path:
    """``tracks`` short tracks in two album folders, and one file that is no audio."""
    for i in range(tracks):
        make_track(
            root / f"album{i % 2}" / f"{GENRES[i % len(GENRES)]}-{i}.wav", genre=GENRES[i % 5], seconds=2.0, seed=i
        )
    (root / "album0" / "notes.wav").write_text("not audio\n")
    return root


def scan(database: Database, card: ModelCard, roots: list[Path], backend: object | None = None) -> ScanSummary:
    summary = ScanSummary()
    with Scanner(Library(database, card), workers=2, backend=backend) as scanner:  # type: ignore[arg-type]
        for report in scanner.scan(roots):
            summary.add(report)
    return summary


def on_cluster(
    address: str, card: ModelCard, path_map: dict[str, str] | None = None, **options: float
) -> ClusterBackend:
    return ClusterBackend(connect(address), card, path_map=PathMap(path_map or {}), **options)


def rows(database: Database, root: Path) -> list[tuple[object, ...]]:
    """Every stored row of every track, ids, times and mtimes left out, paths relative to ``root``."""

    def relative(text: str | None) -> str | None:
        return None if text is None else text.replace(str(root), "ROOT")

    out: list[tuple[object, ...]] = []
    with database.session() as session:
        for track in session.scalars(select(Track).order_by(Track.path)):
            results = session.scalars(select(Result).where(Result.track_id == track.id).order_by(Result.id))
            writes = session.scalars(select(TagWrite).where(TagWrite.track_id == track.id).order_by(TagWrite.id))
            out.append((
                relative(track.path), relative(track.root), track.size, track.fingerprint, track.duration,
                track.format, track.status, relative(track.error), track.user_genres, track.file_genres,
                [(r.model_id, r.vocabulary, r.genres, r.chosen, r.confident, r.windows, r.embedding, r.decided_with)
                 for r in results],
                [(w.field, w.previous, w.new, w.status, w.error) for w in writes],
            ))  # fmt: skip
    return out


def test_a_cluster_scan_records_exactly_what_the_local_scan_does_and_a_rescan_skips_everything(
    tmp_path: Path, scheduler: str, postgres: PostgresServer, tiny_card: ModelCard
) -> None:
    local_root, cluster_root = make_library(tmp_path / "local"), tmp_path / "cluster"
    shutil.copytree(local_root, cluster_root)
    local_db, cluster_db = Database(postgres.create_database()), Database(postgres.create_database())
    local = scan(local_db, tiny_card, [local_root])
    clustered = scan(cluster_db, tiny_card, [cluster_root], on_cluster(scheduler, tiny_card))
    assert clustered.counts == local.counts == {Outcome.TAGGED: 6, Outcome.FAILED: 1}
    for path in sorted(local_root.rglob("*-*.wav")):
        genre = path.name.split("-")[0]
        assert open_tags(cluster_root / path.relative_to(local_root)).read_genres() == open_tags(path).read_genres()
        assert open_tags(path).read_genres() == [genre]
    assert rows(cluster_db, cluster_root) == rows(local_db, local_root)
    assert [reason for _, reason in clustered.failures] == [
        reason.replace(str(local_root), str(cluster_root)) for _, reason in local.failures
    ]

    again = scan(cluster_db, tiny_card, [cluster_root], on_cluster(scheduler, tiny_card))
    assert again.counts == {Outcome.SKIPPED: 7}  # the failed non-audio file too: unchanged since
    assert rows(cluster_db, cluster_root) == rows(local_db, local_root)


def test_a_worker_killed_mid_scan_costs_no_track(
    tmp_path: Path, scheduler: str, pg_url: str, tiny_card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "music"
    for i in range(8):
        make_track(root / f"slow{i}.wav", genre=GENRES[i % 5], seconds=2.0, seed=i)
    monkeypatch.setattr("tagger.cluster.dispatch.analyse_on_worker", sabotaged_cluster_analyse)  # a second per track
    database = Database(pg_url)
    killed: list[int] = []

    def kill_a_busy_worker(watcher: Client) -> None:  # once a track is in flight on a worker
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if busy := [address for address, keys in watcher.processing().items() if keys]:
                killed.append(watcher.run(os.getpid, workers=busy[:1])[busy[0]])
                os.kill(killed[0], signal.SIGKILL)  # its track in flight goes to the other worker
                return
            time.sleep(0.01)

    with Client(scheduler) as watcher:
        killer = threading.Thread(target=kill_a_busy_worker, args=(watcher,))
        killer.start()
        summary = scan(database, tiny_card, [root], on_cluster(scheduler, tiny_card))
        killer.join()
        pids = set(watcher.run(os.getpid).values())
    assert summary.counts == {Outcome.TAGGED: 8}, summary.failures
    assert killed and killed[0] not in pids and len(pids) == 2  # it did die, and its nanny started another


@pytest.mark.parametrize("good", [4, 14], ids=["a track per task", "4 tracks per task"])
def test_a_crashing_or_hanging_decoder_is_retried_once_then_recorded_failed_with_its_reason(
    tmp_path: Path, scheduler: str, pg_url: str, tiny_card: ModelCard, monkeypatch: pytest.MonkeyPatch, good: int
) -> None:
    """With several tracks per task, the crash or hang takes its task's other tracks down: they are sent again one
    per task and tagged; the culprit is found alone."""
    root = tmp_path / "music"
    for i in range(good):
        make_track(root / f"good{i}.wav", seconds=2.0, seed=i)
    make_track(root / "crash.wav", seconds=2.0)
    make_track(root / "hang.wav", seconds=2.0)
    monkeypatch.setattr("tagger.cluster.dispatch.analyse_on_worker", sabotaged_cluster_analyse)
    database = Database(pg_url)
    summary = scan(database, tiny_card, [root], on_cluster(scheduler, tiny_card, timeout=4))
    assert summary.counts == {Outcome.TAGGED: good, Outcome.FAILED: 2}, summary.failures
    reasons = {path.name: reason for path, reason in summary.failures}
    assert reasons["crash.wav"] == "4 worker processes died analysing it (the decoder crashes on this file)"
    assert reasons["hang.wav"] == "gave up after 4 s, twice (decoder hung)"
    with database.session() as session:
        failed = session.scalar(select(Track).where(Track.path == str(root / "crash.wav")))
        assert failed is not None and failed.error == reasons["crash.wav"]


def test_an_interrupted_cluster_scan_resumes_where_it_stopped(
    tmp_path: Path, scheduler: str, pg_url: str, tiny_card: ModelCard
) -> None:
    root = tmp_path / "music"
    for i in range(6):
        make_track(root / f"t{i}.wav", genre=GENRES[i % 5], seconds=2.0, seed=i)
    database = Database(pg_url)
    with Scanner(Library(database, tiny_card), backend=on_cluster(scheduler, tiny_card)) as scanner:
        reports = scanner.scan([root])
        first = [next(reports) for _ in range(2)]  # Ctrl-C after two tracks: the rest in flight is cancelled
        reports.close()
    assert [r.outcome for r in first] == [Outcome.TAGGED] * 2
    resumed = scan(database, tiny_card, [root], on_cluster(scheduler, tiny_card))
    assert resumed.counts == {Outcome.SKIPPED: 2, Outcome.TAGGED: 4}


def test_path_map_sends_the_workers_paths_and_records_the_recorders(
    tmp_path: Path, scheduler: str, postgres: PostgresServer, tiny_card: ModelCard
) -> None:
    """The workers read the library at a second mount point (a symlink here); the database keeps this side's paths."""
    music = make_library(tmp_path / "srv" / "music", tracks=2)
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "music").symlink_to(music)
    database = Database(postgres.create_database())
    mapped = scan(
        database, tiny_card, [music], on_cluster(scheduler, tiny_card, {str(music): str(tmp_path / "mnt" / "music")})
    )
    assert mapped.counts == {Outcome.TAGGED: 2, Outcome.FAILED: 1}
    with database.session() as session:
        assert sorted(session.scalars(select(Track.path))) == sorted(str(p) for p in music.rglob("*.wav"))
    assert all(str(tmp_path / "mnt") in reason for _, reason in mapped.failures)  # the worker read it there

    nowhere = scan(
        Database(postgres.create_database()),
        tiny_card,
        [music],
        on_cluster(scheduler, tiny_card, {str(tmp_path / "srv"): "/nonexistent"}),
    )
    assert nowhere.counts == {Outcome.FAILED: 3}  # every file looked for at the mapped place only
    assert {reason for _, reason in nowhere.failures} == {"no such file"}, nowhere.failures  # here, they are


def test_path_map_maps_whole_folders_only() -> None:
    paths = PathMap({"/srv/music": "/mnt/music", "/srv/music/loud": "/mnt/loud"})
    assert paths.to_worker("/srv/music/a/b.flac") == "/mnt/music/a/b.flac"
    assert paths.to_worker("/srv/music/loud/b.flac") == "/mnt/loud/b.flac"  # the longest prefix wins
    assert paths.to_worker("/srv/musical/b.flac") == "/srv/musical/b.flac"
    assert paths.to_worker("/srv/music") == "/mnt/music"


def test_sqlite_is_refused_for_a_cluster_scan_with_one_line(tmp_path: Path) -> None:
    root = make_library(tmp_path / "music", tracks=1)
    db = tmp_path / "state" / "tagger.db"
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    command = [
        sys.executable,
        "-m",
        "tagger.cli",
        "scan",
        str(root),
        "--cluster",
        "local:2",
        "--db",
        str(db),
        "--model",
        str(TINY_CARD),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: --cluster needs a database server (e.g. --db postgresql+psycopg://USER@HOST/DB), not the SQLite file "
        f"{db}: several machines cannot share one SQLite file on network storage"
    ]
    assert not db.exists() and not db.parent.exists()  # refused before anything was created
    assert open_tags(next(root.rglob("*-0.wav"))).read_genres() == []


def test_a_bad_cluster_address_is_one_line(tmp_path: Path, pg_url: str) -> None:
    root = make_library(tmp_path / "music", tracks=1)
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    for address, expected in [
        (
            "scheduler:8786",
            "error: --cluster: expected tcp://HOST:PORT (a Dask scheduler) or local:N, got 'scheduler:8786'",
        ),
        ("local:0", "error: --cluster local:0: expected local:N with N >= 1 worker processes"),
    ]:
        command = [
            sys.executable,
            "-m",
            "tagger.cli",
            "scan",
            str(root),
            "--cluster",
            address,
            "--db",
            pg_url,
            "--model",
            str(TINY_CARD),
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert (done.returncode, done.stderr.strip().splitlines()) == (1, [expected])


def test_tagger_scan_takes_the_cluster_and_path_map_from_the_config(
    tmp_path: Path, scheduler: str, pg_url: str
) -> None:
    """The command itself, as a user runs it: `cluster` and `path_map` from the config file, a PostgreSQL URL."""
    music = make_library(tmp_path / "srv" / "music", tracks=2)
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "music").symlink_to(music)
    config = tmp_path / "config.toml"
    config.write_text(f'cluster = "{scheduler}"\npath_map = {{ "{music}" = "{tmp_path / "mnt" / "music"}" }}\n')
    env = {**os.environ, "TAGGER_CONFIG": str(config)}
    command = [sys.executable, "-m", "tagger.cli", "scan", str(music), "--db", pg_url, "--model", str(TINY_CARD)]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"tagged": 2, "failed": 1}
    with Database(pg_url).session() as session:
        assert sorted(session.scalars(select(Track.path))) == sorted(str(p) for p in music.rglob("*.wav"))

    config.write_text(f'cluster = "{scheduler}"\npath_map = {{ "{music}" = 1 }}\n')
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f'config error: {config}: path_map: expected a table of strings, got {{"{music}": 1}}',
    )


def test_a_cluster_without_workers_stops_the_scan_with_one_line_instead_of_waiting(
    tmp_path: Path, pg_url: str, tiny_card: ModelCard
) -> None:
    """A scheduler whose workers are all gone (or never came): the scan does not wait for ever (it hung before)."""
    root = make_library(tmp_path / "music", tracks=2)
    with dask.config.set(LOCAL_SCHEDULER):
        empty = LocalCluster(n_workers=0, processes=False, dashboard_address=None, silence_logs=logging.CRITICAL)
    with empty:
        backend = ClusterBackend(Client(empty.scheduler_address), tiny_card, no_workers_timeout=0.5)
        database = Database(pg_url)
        with pytest.raises(ClusterError, match="the cluster has had no workers for 0 s: start workers"):
            scan(database, tiny_card, [root], backend)
    with database.session() as session:  # no track was recorded failed for want of workers
        failed = set(session.scalars(select(Track.path).where(Track.status == TrackStatus.FAILED)))
    assert not {path for path in failed if not path.endswith("notes.wav")}
