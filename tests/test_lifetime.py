"""Worker and decoder processes die with the process that started them: real `tagger scan` and
`tagger watch` processes, SIGKILLed while a worker's ffmpeg is stuck, leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tagger.model import ModelCard
from tagger.record import Library
from tagger.scan import Scanner
from tagger.store import Database
from tagger.track import Outcome
from tests.audio_factory import make_track
from tests.conftest import TINY_CARD

pytestmark = [
    pytest.mark.model,
    pytest.mark.runtime,
    pytest.mark.ffmpeg,
    pytest.mark.skipif(sys.platform != "linux", reason="/proc"),
]
REPO = Path(__file__).resolve().parents[1]
# `tagger` itself, with the worker task swapped for one whose ffmpeg hangs on ffmpeg-hang.wav.
SABOTAGED_TAGGER = (
    "import sys; from tagger import analysis; from tests.sabotage import sabotaged_analyse; "
    "analysis._analyse_in_worker = sabotaged_analyse; from tagger.cli import main; sys.argv[0] = 'tagger'; main()"
)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]  # the name in parentheses may hold spaces
    return state, int(ppid)


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited; only its parent has not reaped it


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid``: pid -> command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            continue
        todo.extend(children.get(child, []))
    return found


@pytest.fixture
def stuck_library(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    make_track(root / "good.wav", seconds=2.0)
    make_track(root / "ffmpeg-hang.wav", seconds=2.0)
    os.mkfifo(root / "stuck.fifo")  # not an audio name: only the sabotaged task opens it
    return root


@pytest.mark.parametrize("command", ["scan", "watch"])
def test_sigkill_leaves_no_worker_decoder_or_resource_tracker(
    stuck_library: Path, tmp_path: Path, command: str
) -> None:
    args = [str(stuck_library), "--workers", "1", "--model", str(TINY_CARD), "--db", str(tmp_path / "t.db")]
    if command == "watch":
        args += ["--quiet-seconds", "0"]
    env = {**os.environ, "TAGGER_CONFIG": str(tmp_path / "none.toml"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", SABOTAGED_TAGGER, command, *args],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tree: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while not any("ffmpeg" in line for line in tree.values()):
            assert process.poll() is None and time.monotonic() < deadline, f"no stuck ffmpeg: {tree}"
            time.sleep(0.2)
            tree = descendants(process.pid)
        kinds = {
            next((k for k in ("ffmpeg", "resource_tracker", "spawn_main") if k in line), line) for line in tree.values()
        }
        assert {"ffmpeg", "resource_tracker", "spawn_main"} <= kinds, tree

        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while (left := {pid: line for pid, line in tree.items() if alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"outlived their SIGKILLed parent: {left}"
    finally:
        process.kill()
        process.wait()
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_outlive_the_thread_that_started_them(tmp_path: Path, database: Database, tiny_card: ModelCard) -> None:
    """The kernel's parent-death signal follows the spawning *thread*: a pool started from a thread
    that then ends (as the daemon's processor thread could) must keep its workers."""
    root = tmp_path / "music"
    make_track(root / "a.wav", seconds=2.0)
    with Scanner(Library(database, tiny_card), workers=1, force=True) as scanner:
        first: list[Outcome] = []
        thread = threading.Thread(target=lambda: first.extend(r.outcome for r in scanner.scan([root])))
        thread.start()
        thread.join()
        pids = scanner.worker_pids()
        assert first == [Outcome.TAGGED] and len(pids) == 1
        time.sleep(1.0)
        assert all(alive(pid) for pid in pids)
        again = [r.outcome for r in scanner.scan([root])]
        assert again == [Outcome.UNCHANGED] and scanner.worker_pids() == pids
