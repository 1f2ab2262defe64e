"""SIGKILL at random points, and two processes at once: no file damaged, no half record, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from tagger import audio
from tagger.store import Database, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.tags import TEMP_MARKER, open_tags
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model, pytest.mark.slow]

FORMATS = (".flac", ".mp3", ".ogg", ".wav", ".opus", ".aiff")


def scan_command(root: Path, db: Path | str) -> list[str]:
    return [sys.executable, "-m", "tagger.cli", "scan", str(root), "--db", str(db), "--model", str(TINY_CARD),
            "--json", "--workers", "1"]  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[np.ndarray, dict[str, list[str]]]]:
    """Decoded audio and every non-genre tag of each track."""
    return {p.name: (audio.decode(p, 16000), open_tags(p).read_other_tags()) for p in sorted(root.iterdir())
            if not p.name.startswith(".")}  # fmt: skip


def check_intact(root: Path, db: Path | str, originals: dict[str, tuple[np.ndarray, dict[str, list[str]]]]) -> None:
    """Every file decodes to the same samples with the same other tags; a SQLite file is sound."""
    for name, (samples, others) in snapshot(root).items():
        np.testing.assert_array_equal(samples, originals[name][0], err_msg=name)
        assert others == originals[name][1], name
    sqlite_file = Path(str(db).removeprefix("sqlite:///"))
    if (isinstance(db, Path) or db.startswith("sqlite:///")) and sqlite_file.exists():  # killed before it was made?
        with sqlite3.connect(sqlite_file) as connection:
            assert connection.execute("pragma integrity_check").fetchone() == ("ok",)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    for i in range(12):
        make_track(root / f"track{i:02d}{FORMATS[i % len(FORMATS)]}", seconds=3.0 + i % 3, seed=i,
                   sample_rate=48000 if FORMATS[i % len(FORMATS)] == ".opus" else 24000)  # fmt: skip
    return root


def test_kill_at_random_points_then_resume(library: Path, tmp_path: Path) -> None:
    db = tmp_path / "state" / "tagger.db"
    originals = snapshot(library)
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    rng = random.Random(7)
    rounds = 12
    for _ in range(rounds):
        process = subprocess.Popen(scan_command(library, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=env, start_new_session=True)  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0))
        os.killpg(process.pid, signal.SIGKILL)  # the scan and its worker processes
        process.wait()
        check_intact(library, db, originals)
    final = subprocess.run(scan_command(library, db), capture_output=True, text=True, env=env, timeout=600)
    assert final.returncode == 0, final.stderr
    check_intact(library, db, originals)
    assert not list(library.glob(f"*{TEMP_MARKER}*"))  # leftovers of killed writes are cleaned up

    database = Database(db)
    with database.session() as session:
        tracks = session.scalars(select(Track)).all()
        assert len(tracks) == 12 and {t.status for t in tracks} == {TrackStatus.DONE}
        assert session.scalar(select(func.count()).where(TagWrite.status == TagWriteStatus.PENDING)) == 0
        for track in tracks:
            applied = [w for w in track.tag_writes if w.status == TagWriteStatus.APPLIED]
            assert applied, track.path
            assert open_tags(track.path).read_genres() == applied[-1].new  # the file says what the DB says


def test_two_scans_at_once_do_not_corrupt_or_double_write(library: Path, tmp_path: Path, db_url: str) -> None:
    """Two users' scans (different data folders, as the service user and the owner): one database lock."""
    db = db_url
    originals = snapshot(library)
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml")}
    users = [{**env, "XDG_DATA_HOME": str(tmp_path / user)} for user in ("service", "owner")]
    rounds = 2
    for round_number in range(rounds):
        if round_number:
            for path in library.iterdir():  # new content for the second round: everything changes again
                os.utime(path, (time.time(), time.time() + 10 * round_number))
        scans = [subprocess.Popen(scan_command(library, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user)
                 for user in users]  # fmt: skip
        for process in scans:
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stdout.decode() + stderr.decode()[-3000:]
        check_intact(library, db, originals)
    database = Database(db)
    with database.session() as session:
        for track in session.scalars(select(Track)):
            applied = [w for w in track.tag_writes if w.status == TagWriteStatus.APPLIED]
            assert len(applied) == 1, (track.path, [(w.previous, w.new) for w in applied])  # never written twice
