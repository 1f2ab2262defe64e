"""What a walk meets on real disks: FIFOs, sockets and devices, paths spelled many ways, formats
this tool does not tag, folders it cannot enter. Special files are real (mkfifo, a bound socket,
mknod); every test that could hang on one runs under a timeout, so a regression fails instead."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tagger.files import NotRegularFileError
from tagger.model import ModelCard
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database, Result, TagWrite, Track, TrackStatus
from tagger.tags import open_tags
from tagger.track import fingerprint
from tagger.walk import canonical_path, iter_audio_files
from tests.audio_factory import have_ffmpeg, make_track
from tests.conftest import TINY_CARD
from tests.daemon.harness import running, track_rows

pytestmark = [pytest.mark.model]


def tagger(
    *args: str, cwd: Path, db: Path, timeout: float = 300, model: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it (worker processes included)."""
    env = {**os.environ, "TAGGER_CONFIG": str(db.parent / "none.toml")}
    command = [sys.executable, "-m", "tagger.cli", *args, "--db", str(db), *(["--model", str(TINY_CARD)] * model)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def special_files(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A root holding one real track and a FIFO, a socket (and, as root, a device) named like audio."""
    root = tmp_path / "lib"
    make_track(root / "real.wav", seconds=2.0)
    os.mkfifo(root / "x.flac")
    expected = {"x.flac": "not a regular file (FIFO)"}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "s.mp3"))
    expected["s.mp3"] = "not a regular file (socket)"
    if os.geteuid() == 0:
        os.mknod(root / "null.ogg", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
        expected["null.ogg"] = "not a regular file (character device)"
    try:
        yield root, expected
    finally:
        server.close()


# ---------------------------------------------------------------------------- special files
@pytest.mark.timeout(120)
def test_scan_reports_fifo_socket_and_device_and_goes_on(
    special_files: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, expected = special_files
    result = tagger("scan", str(root), "--json", "--workers", "1", cwd=tmp_path, db=tmp_path / "t.db", timeout=100)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["tagged"] == 1  # the real track: the run went on
    assert {Path(f["path"]).name: f["reason"] for f in summary["failures"]} == expected
    with Database(tmp_path / "t.db").session() as session:
        errors = dict(session.execute(select(Track.path, Track.error).where(Track.status == TrackStatus.FAILED)).all())
    assert {Path(p).name: e for p, e in errors.items()} == expected
    assert stat.S_ISFIFO(os.lstat(root / "x.flac").st_mode)  # nothing was put in its place


@pytest.mark.timeout(120)
def test_classify_says_what_is_wrong_in_one_line(special_files: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = special_files
    (tmp_path / "notes.wv").write_bytes(b"wvpk" + bytes(60))
    cases = {
        root / "x.flac": "not a regular file (FIFO)",
        tmp_path / "nope.mp3": "no such file",
        tmp_path / "notes.wv": "unsupported format (.wv)",
    }
    for path, reason in cases.items():
        result = tagger("classify", str(path), cwd=tmp_path, db=tmp_path / "t.db", timeout=100)
        assert result.returncode == 1, (path, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.mark.timeout(120)
def test_daemon_catch_up_records_a_fifo_and_tags_the_rest(
    special_files: tuple[Path, dict[str, str]], database: Database, tiny_card: ModelCard
) -> None:
    root, expected = special_files
    library = Library(database, tiny_card, TagOptions())
    with running(library, [root]):
        pass  # ``running`` waits for the catch-up walk to finish: it did not hang
    rows = {Path(p).name: status for p, (status, _) in track_rows(database).items()}
    assert rows == {"real.wav": TrackStatus.DONE, **dict.fromkeys(expected, TrackStatus.FAILED)}


@pytest.mark.timeout(30)
def test_move_fingerprint_refuses_a_fifo_without_opening_it_blocking(tmp_path: Path) -> None:
    """The race the scan's stat cannot close: a file swapped for a FIFO just before the fingerprint."""
    os.mkfifo(tmp_path / "swapped.flac")
    with pytest.raises(NotRegularFileError, match=r"not a regular file \(FIFO\)"):
        fingerprint(tmp_path / "swapped.flac")


# ---------------------------------------------------------------------------- one spelling per path
def test_relative_dotdot_and_symlinked_roots_are_one_library(tmp_path: Path) -> None:
    """``scan lib``, ``scan ../x/lib``, ``scan <symlink to lib>`` and ``restore <symlink>`` on one database."""
    lib = tmp_path / "x" / "lib"
    names = ["a.flac", "b.mp3", "c.ogg"]
    for i, name in enumerate(names):
        make_track(lib / "album" / name, seconds=2.0, seed=i)
    (tmp_path / "x" / "sub").mkdir()
    link = tmp_path / "link"
    link.symlink_to(lib, target_is_directory=True)
    db = tmp_path / "state" / "t.db"

    first = tagger("scan", "lib", "--json", "--workers", "1", cwd=tmp_path / "x", db=db)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["counts"] == {"tagged": 3}
    for spelling, cwd in (("../lib", tmp_path / "x" / "sub"), (str(link), tmp_path), ("./x/lib/", tmp_path)):
        again = tagger("scan", spelling, "--json", "--workers", "1", cwd=cwd, db=db)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["counts"] == {"skipped": 3}, spelling  # nothing re-classified

    database = Database(db)
    with database.session() as session:
        tracks = session.scalars(select(Track)).all()
        assert sorted(t.path for t in tracks) == [str(lib.resolve() / "album" / n) for n in names]
        assert {t.root for t in tracks} == {str(lib.resolve())}
        assert all(not t.user_genres for t in tracks)  # the tool's own genre never became the owner's
        assert len(session.scalars(select(Result)).all()) == 3
        assert len(session.scalars(select(TagWrite)).all()) == 3

    restored = tagger("restore", str(link / "album"), cwd=tmp_path, db=db, model=False)
    assert restored.returncode == 0, restored.stderr
    assert "3 restored" in restored.stdout
    assert all(open_tags(lib / "album" / name).read_genres() == [] for name in names)


def test_canonical_path_keeps_a_symlinked_files_name(tmp_path: Path) -> None:
    real = make_track(tmp_path / "store" / "real.flac", seconds=1.0)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "alias.flac").symlink_to(real)
    (tmp_path / "lib-link").symlink_to(tmp_path / "lib", target_is_directory=True)
    # the folders are resolved, the file's own link name is kept
    assert canonical_path(tmp_path / "lib-link" / "alias.flac") == tmp_path.resolve() / "lib" / "alias.flac"
    assert canonical_path(tmp_path / "lib-link" / ".." / "store") == tmp_path.resolve() / "store"
    walked = list(iter_audio_files([tmp_path / "lib-link"], follow_symlinks=True))
    assert walked == [(tmp_path.resolve() / "lib", tmp_path.resolve() / "lib" / "alias.flac")]


# ---------------------------------------------------------------------------- formats and folders
@pytest.mark.skipif(not have_ffmpeg(), reason="ffmpeg makes the WavPack file")
def test_unsupported_formats_are_reported_not_passed_over(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "lib"
    source = make_track(tmp_path / "source.wav", seconds=2.0)
    root.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), str(root / "x.wv")], check=True, timeout=60)
    shutil.copy(source, root / "y.wav")
    before = (root / "x.wv").read_bytes()
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        reports = {r.path.name: r for r in scanner.scan([root])}
    assert reports["x.wv"].reason == "unsupported format (.wv)"
    assert reports["y.wav"].outcome.value == "tagged"
    assert (root / "x.wv").read_bytes() == before


def test_too_deep_folder_is_reported_in_the_summary(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    """A folder whose path exceeds PATH_MAX cannot be listed: the scan says so instead of passing over it."""
    root = tmp_path / "lib"
    make_track(root / "top.wav", seconds=1.0)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):  # 20 x 251 bytes: past Linux's 4096-byte PATH_MAX
            os.mkdir("d" * 250, dir_fd=fd)
            deeper = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        reports = list(scanner.scan([root]))
    failed = [r for r in reports if r.outcome.value == "failed"]
    assert [r.path.name for r in reports if r.outcome.value == "tagged"] == ["top.wav"]
    assert len(failed) == 1 and failed[0].reason == "cannot read folder: path too long", failed
    shutil.rmtree(root, ignore_errors=True)


def test_a_track_recorded_under_an_old_spelling_is_taken_over_not_duplicated(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    """Databases written before canonical paths hold spellings like ``.../sub/../lib/a.flac``."""
    lib = tmp_path / "x" / "lib"
    path = make_track(lib / "a.flac", seconds=2.0)
    (tmp_path / "x" / "sub").mkdir()
    library = Library(database, tiny_card)
    with Scanner(library, isolate=False) as scanner:
        assert [r.outcome.value for r in scanner.scan([lib])] == ["tagged"]
    old_spelling = str(tmp_path / "x" / "sub" / ".." / "lib" / "a.flac")
    with database.session() as session:
        track = session.scalars(select(Track)).one()
        track.path, track.root = old_spelling, str(tmp_path / "x" / "sub" / ".." / "lib")
    with Scanner(library, isolate=False) as scanner:
        reports = list(scanner.scan([lib]))
    assert [(r.outcome.value, r.reason) for r in reports] == [("moved", f"from {old_spelling}")]
    with database.session() as session:
        assert session.scalars(select(Track.path)).all() == [str(path.resolve())]
        assert len(session.scalars(select(Result)).all()) == 1  # not classified again


def test_a_link_to_a_file_inside_the_roots_is_scanned_once_under_its_own_name(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "lib"
    real = make_track(root / "b" / "song.flac", seconds=2.0)
    (root / "a").mkdir()
    (root / "a" / "alias.flac").symlink_to(real)  # walked first: "a" sorts before "b"
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        reports = {r.path.name: r.outcome.value for r in scanner.scan([root])}
    assert reports == {"song.flac": "tagged"}
    with Scanner(Library(database, tiny_card), isolate=False) as scanner:
        assert {r.path.name: r.outcome.value for r in scanner.scan([root])} == {"song.flac": "skipped"}
    with database.session() as session:
        assert [t.user_genres for t in session.scalars(select(Track))] in ([None], [[]])


def test_a_hard_linked_file_is_scanned_once_under_its_first_name(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    root = tmp_path / "lib"
    real = make_track(root / "b" / "song.flac", seconds=2.0)
    (root / "a").mkdir()
    os.link(real, root / "a" / "seeded.flac")  # a torrent client's copy: walked first
    for expected in ("tagged", "skipped"):
        with Scanner(Library(database, tiny_card), isolate=False) as scanner:
            assert {r.path.name: r.outcome.value for r in scanner.scan([root])} == {"seeded.flac": expected}
    assert os.stat(real).st_ino == os.stat(root / "a" / "seeded.flac").st_ino  # hardlinks = "keep"
    assert open_tags(real).read_genres() == open_tags(root / "a" / "seeded.flac").read_genres() != []
