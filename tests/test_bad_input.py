"""Bad input, each on real files: recorded with a reason naming the file, the scan goes on, no file changes."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tagger import audio
from tagger.analysis import analyse_safely
from tagger.errors import FileError
from tagger.model import Classifier, ModelCard
from tagger.pipeline import WINDOW_CAP
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database, Result, Track
from tagger.tags import open_tags
from tagger.track import Outcome, TrackReport
from tagger.walk import iter_audio_files
from tests.audio_factory import make_track, write_audio
from tests.conftest import TINY_CARD

pytestmark = [pytest.mark.model]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan(database: Database, card: ModelCard, files: object, **kwargs: object) -> dict[str, TrackReport]:
    with Scanner(Library(database, card, TagOptions()), isolate=False, **kwargs) as scanner:  # type: ignore[arg-type]
        runner = scanner.run(files) if not isinstance(files, Path) else scanner.scan([files])  # type: ignore[arg-type]
        return {os.fsencode(r.path.name).decode("utf-8", "replace"): r for r in runner}


@pytest.fixture
def bad_library(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    make_track(root / "good.flac", seconds=4.0)
    (root / "zero.flac").touch()
    (root / "text.flac").write_text("Shopping list: milk, eggs, a better tagger.\n" * 50)
    (root / "random.mp3").write_bytes(np.random.default_rng(0).bytes(20_000))
    whole_flac = make_track(tmp_path / "whole.flac", seconds=6.0)
    (root / "truncated.flac").write_bytes(whole_flac.read_bytes()[: whole_flac.stat().st_size // 3])
    whole_mp3 = make_track(tmp_path / "whole.mp3", seconds=6.0)
    (root / "truncated.mp3").write_bytes(whole_mp3.read_bytes()[: whole_mp3.stat().st_size // 3])
    make_track(tmp_path / "disguised.flac", seconds=3.0).rename(root / "flac-named.mp3")
    make_track(root / "short.wav", seconds=0.3)
    write_audio(root / "silence.wav", np.zeros(24000 * 3, np.float32), 24000)
    huge = make_track(root / "huge-tags.flac", seconds=3.0)
    from mutagen.flac import FLAC

    tagged = FLAC(huge)
    tagged["COMMENT"] = "x" * 2_000_000
    tagged["GENRE"] = "Chanson"
    tagged.save()
    read_only = make_track(root / "read-only.ogg", seconds=3.0)
    read_only.chmod(0o444)
    (root / "loop").symlink_to(root, target_is_directory=True)
    outside = make_track(tmp_path / "outside" / "elsewhere.flac", seconds=3.0)
    (root / "link-outside.flac").symlink_to(outside)
    make_track(tmp_path / "latin1.flac", seconds=3.0).rename(root / os.fsdecode(b"caf\xe9-latin1.flac"))
    return root


def test_every_bad_input_is_handled(bad_library: Path, database: Database, tiny_card: ModelCard) -> None:
    before = {p: digest(p) for p in bad_library.iterdir() if p.is_file() and not p.is_symlink()}
    reports = scan(database, tiny_card, bad_library)

    failed = {name: r.reason for name, r in reports.items() if r.outcome is Outcome.FAILED}
    for name in ("zero.flac", "text.flac", "random.mp3"):
        assert "not an audio file" in failed[name], failed
    assert "read-only" in failed["read-only.ogg"] and "tag write not possible" in failed["read-only.ogg"]
    # classified from what there is, and tagged: valid audio, whatever its name or length
    for name in ("good.flac", "flac-named.mp3", "short.wav", "silence.wav", "café-latin1.flac".replace("é", "\ufffd")):
        assert reports[name].outcome is Outcome.TAGGED, (name, reports[name])
    assert reports["huge-tags.flac"].outcome is Outcome.KEPT  # the owner's genre, policy keep
    assert reports["truncated.flac"].outcome is Outcome.FAILED and "lost sync" in reports["truncated.flac"].reason
    assert "truncated.mp3" in reports  # cut at a frame boundary it is just a short MP3: classified
    assert "elsewhere.flac" not in reports and "link-outside.flac" not in reports  # not followed
    assert len(reports) == 12  # the symlink loop did not walk the library twice

    for path, value in before.items():
        name = os.fsencode(path.name).decode("utf-8", "replace")
        if reports[name].outcome is not Outcome.TAGGED:
            assert digest(path) == value, f"{name} changed although it was not tagged"
        else:
            assert len(audio.decode(path, 16000)) > 0, f"{name} no longer decodes"

    with database.session() as session:
        assert session.query(Track).filter(Track.error.is_not(None)).count() == len(failed)
        assert session.query(Track).filter(Track.status == "failed").count() == len(failed) - 1  # read-only: done
        names = {os.fsencode(Path(t.path).name) for t in session.query(Track)}
        assert b"caf\xe9-latin1.flac" in names  # a Latin-1 name survives the database


def test_read_only_file_is_classified_and_recorded(bad_library: Path, database: Database, tiny_card: ModelCard) -> None:
    path = bad_library / "read-only.ogg"
    scan(database, tiny_card, [(bad_library, path)])
    with database.session() as session:
        track = session.query(Track).one()
        assert track.results and "read-only" in (track.error or "")
    assert open_tags(path).read_genres() == []
    path.chmod(0o644)  # the owner makes it writable: the next scan writes the genre
    again = scan(database, tiny_card, [(bad_library, path)])
    assert again["read-only.ogg"].outcome is Outcome.TAGGED
    assert open_tags(path).read_genres() != []


def test_bad_files_in_worker_processes_keep_their_reason_and_the_pool(
    tmp_path: Path, database: Database, tiny_card: ModelCard
) -> None:
    """Through real worker processes: each bad file gets the reason an in-process read gives, and
    no worker is restarted (a reason that does not survive the trip back used to break the pool)."""
    root = tmp_path / "music"
    root.mkdir()
    make_track(root / "good.flac", seconds=3.0)
    (root / "zero.mp3").touch()
    (root / "random.mp3").write_bytes(np.random.default_rng(1).bytes(20_000))
    (root / "text.mp3").write_text("Shopping list: milk, eggs, a better tagger.\n" * 50)
    for suffix in (".flac", ".mp3"):
        whole = make_track(tmp_path / f"whole{suffix}", seconds=6.0)
        (root / f"truncated{suffix}").write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    in_process = Classifier(tiny_card)
    expected: dict[str, str | None] = {}
    for path in root.iterdir():
        analysed = analyse_safely(path, in_process, None)
        expected[path.name] = analysed.reason if isinstance(analysed, FileError) else None

    pids: list[set[int]] = []
    with Scanner(Library(database, tiny_card), workers=1, timeout=60) as scanner:
        reports: dict[str, TrackReport] = {}
        for report in scanner.scan([root]):
            reports[report.path.name] = report
            pids.append(scanner.worker_pids())
    got = {name: r.reason if r.outcome is Outcome.FAILED else None for name, r in reports.items()}
    assert got == expected
    for name in ("zero.mp3", "random.mp3", "text.mp3"):
        assert "not an audio file" in (got[name] or ""), got
    assert "lost sync" in (got["truncated.flac"] or ""), got
    assert len(pids) == 6 and len(pids[0]) == 1 and all(p == pids[0] for p in pids), pids  # never restarted


def _deleting(files: list[tuple[Path, Path]], victim: Path, replacement: Path | None) -> Iterator[tuple[Path, Path]]:
    """Yields the files to the planner, then changes ``victim`` before the decoder reaches it."""
    yield from files
    if replacement is None:
        victim.unlink()
    else:
        shutil.copyfile(replacement, victim)


@pytest.mark.parametrize("replace", [False, True])
def test_file_deleted_or_replaced_between_listing_and_reading(
    tmp_path: Path, database: Database, tiny_card: ModelCard, replace: bool
) -> None:
    root = tmp_path / "music"
    victim = make_track(root / "victim.flac", seconds=3.0)
    other = make_track(tmp_path / "other.flac", genre="drone", seconds=5.0)
    files = list(iter_audio_files([root]))
    reports = scan(database, tiny_card, _deleting(files, victim, other if replace else None))
    report = reports["victim.flac"]
    assert report.outcome is Outcome.FAILED
    assert ("changed while being read" if replace else "no such file") in report.reason
    with database.session() as session:
        assert session.query(Result).count() == 0  # nothing half-recorded


def test_three_hour_file_is_capped_and_bounded(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    path = tmp_path / "music" / "mix.flac"
    path.parent.mkdir()
    rate = 8000
    block = np.sin(np.arange(rate * 60) * 2 * np.pi * 220 / rate).astype(np.float32) * 0.3
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC") as f:
        for _ in range(180):  # three hours, written a minute at a time
            f.write(block)
    reports = scan(database, tiny_card, path.parent)
    assert reports["mix.flac"].outcome is Outcome.TAGGED
    with database.session() as session:
        (result,) = session.query(Result).all()
        starts = result.windows["starts"]
        assert len(starts) == WINDOW_CAP and starts[-1] > 3 * 3600 - 60  # spread over the whole mix


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to nobody")
def test_unreadable_file_is_recorded_as_permission_denied() -> None:
    """A real permission error: the scan runs as the unprivileged user ``nobody``."""
    tmp_path = Path(tempfile.mkdtemp(prefix="tagger-nobody-"))  # pytest's own tmp dirs are private to root
    tmp_path.chmod(0o777)
    root = tmp_path / "music"
    make_track(root / "fine.wav", seconds=2.0)
    secret = make_track(root / "secret.wav", seconds=2.0)
    secret.chmod(0o000)
    root.chmod(0o777)
    make_track(root / "others.wav", seconds=2.0)  # root's, writable by all: nobody gets no lease on it
    for path in root.iterdir():
        if path != secret:
            path.chmod(0o666)
    nobody = pwd.getpwnam("nobody")
    os.chown(root / "fine.wav", nobody.pw_uid, nobody.pw_gid)  # nobody's own file: the lease is granted
    (root / "locked").mkdir(mode=0o000)  # a folder nobody cannot list: reported, not passed over
    make_track(root / "locked" / "hidden.wav", seconds=1.0)
    (root / "locked").chmod(0o000)
    # In-process scan: this machine's Python lives under /root, which nobody cannot exec for worker processes.
    script = (
        "import sys; from tagger.record import Library; from tagger.scan import Scanner; "
        "from tagger.model import load_card; from tagger.store import Database; "
        "scanner = Scanner(Library(Database(sys.argv[2]), load_card(sys.argv[3])), isolate=False); "
        "[print(r.outcome.value, r.path, r.reason, sep='|') for r in scanner.scan([sys.argv[1]])]"
    )
    command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", script,
               str(root), str(tmp_path / "nobody.db"), str(TINY_CARD)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr
    lines = [line.split("|") for line in result.stdout.splitlines()]
    outcomes = {Path(path).name: (outcome, reason) for outcome, path, reason in lines}
    assert outcomes["fine.wav"][0] == "tagged", outcomes
    # No lease on another user's file, and that user's processes are hidden from nobody: not replaced.
    assert outcomes["others.wav"][0] == "failed"
    assert "cannot tell whether another process is writing it" in outcomes["others.wav"][1]
    assert outcomes["locked"] == ("failed", "cannot read folder: permission denied")
    assert outcomes["secret.wav"][0] == "failed" and "Permission denied" in outcomes["secret.wav"][1]
    shutil.rmtree(tmp_path)
