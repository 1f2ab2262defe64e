"""genre-tagger speed benchmark: one command, every figure beside its target.

    .venv/bin/python bench/run.py [--tracks N] [--model NAME] [--quick] [--corpus DIR]

Generates a corpus (4-minute stereo 44.1 kHz MP3 192 kbps and FLAC, a 30-minute and a 2-hour
MP3, a library of many tiny WAVs), then measures the real commands as subprocesses: CPU time
is the whole process tree's (``getrusage(RUSAGE_CHILDREN)``, worker processes included), peak
memory is each process's ``VmHWM`` sampled from /proc while it runs. The machine may be
shared: every figure is a median of ``--repeat`` runs, and the CPU that other processes used
during each run (/proc/stat minus the measured tree) is printed with the wall-time figures.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF
from typing import Any

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: tagger and trainer from this checkout
    sys.path.insert(0, str(REPO))

SAMPLE_RATE = 44100
TRACK_SECONDS = 240.0
GENRES = ("techno", "organ", "breaks", "chimes", "drone")
FALLBACK_MODEL = REPO / "tests" / "fixtures" / "models" / "tiny.json"
WINDOW_SETTINGS: tuple[int | None, ...] = (None, 16, 8, 4)  # None: every window (up to the pipeline's cap)
# The musicnn file shipped before the im2col rebuild (issue 14), timed beside the card's file in one run.
BASELINE_MODELS: dict[str, Path] = {"musicnn": REPO / "bench" / "baseline" / "musicnn-1-conv-int8-selective.tflite"}
MODEL_SPEEDUP_MIN = 4.0
MODEL_WINDOWS = 32  # windows per timed predict (batches of 8, as the tagger)
SAMPLE_INTERVAL = 0.05  # seconds between /proc memory samples
OTHERS_IDLE_MAX = 0.25  # cores other processes may use during a wall-time figure before it is called unfair

# Targets (the performance issue's).
SCAN_VS_DECODE_MAX = 2.0
NAIVE_SPEEDUP_MIN = 5.0
RESCAN_10K_MAX_S = 10.0
WORKER_RSS_MAX_MB = 300.0
LONG_TRACK_RSS_SLACK = 1.15  # 2-hour worker peak within 15 % of the 4-minute one
DAEMON_RSS_MAX_MB = 150.0
COLD_START_MAX_S = 2.0
WORKER_SPEEDUP_MIN = 1.7

console = Console(stderr=True)


# ------------------------------------------------------------------ measuring processes
@dataclass
class Measured:
    """One subprocess run: wall and CPU seconds of its whole tree, peak RSS (MB) per role."""

    wall: float
    cpu: float
    peak_mb: dict[str, float]
    stdout: str
    returncode: int
    others: float  # cores kept busy by other processes during the run (nan off Linux)


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (Linux /proc/stat), else nan."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu_of(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _proc_children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _proc_children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "main"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"resource_tracker" in cmdline:
        return "tracker"
    if b"multiprocessing" in cmdline or b"spawn_main" in cmdline:
        return "worker"
    return "other"


class MemorySampler:
    """Peak RSS (``VmHWM``) per role of a process tree, sampled until stopped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        if not Path("/proc").is_dir():
            return
        for pid in _tree(self.root):
            hwm = _status_kb(pid, "VmHWM")
            if hwm is None:
                continue
            role = _role(pid, self.root)
            if self.roles.get(pid) != role:  # exec-ed since: until then a fork shows its parent's memory
                self.roles[pid], self.peak_kb[pid] = role, 0
            self.peak_kb[pid] = max(hwm, self.peak_kb[pid])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def peak_mb(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for pid, kb in self.peak_kb.items():
            role = self.roles[pid]
            peaks[role] = max(peaks.get(role, 0.0), kb / 1024)
        return peaks

    def current_mb(self) -> float:
        """Resident memory of the whole tree now (``VmRSS`` summed)."""
        return sum((_status_kb(pid, "VmRSS") or 0) for pid in _tree(self.root)) / 1024


def measure(command: Sequence[str], env: dict[str, str], timeout: float = 3600) -> Measured:
    """Run ``command`` to the end; CPU is the tree's (children are reaped by their parents)."""
    cpu_before, own_before, busy_before = _cpu_of(RUSAGE_CHILDREN), _cpu_of(RUSAGE_SELF), _busy_cpu_seconds()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with MemorySampler(process.pid) as sampler:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    cpu = _cpu_of(RUSAGE_CHILDREN) - cpu_before
    own = _cpu_of(RUSAGE_SELF) - own_before  # the bench itself: starting the process, sampling memory
    others = max(0.0, _busy_cpu_seconds() - busy_before - cpu - own) / wall
    if process.returncode != 0:
        console.print(f"[red]{' '.join(command[:3])}... exited {process.returncode}[/]\n{stderr[-2000:]}")
    return Measured(wall, cpu, sampler.peak_mb(), stdout, process.returncode, others)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# ------------------------------------------------------------------ corpus
@dataclass
class Corpus:
    tracks: list[Path]  # 4-minute MP3 and FLAC
    half_hour: Path | None
    two_hours: Path
    small_library: Path  # many tiny WAVs
    small_count: int
    stub: Path  # one 1-second WAV: start-up cost of a scan
    empty: Path
    mp3_encoder: str


def _stereo_track(genre: str, seconds: float, seed: int) -> np.ndarray:
    """Music-like stereo: the synthetic genre in 60-second sections, the channels two variations of it."""
    from tagger.train.synthetic import render

    sections = []
    for section in range(int(np.ceil(seconds / 60.0))):
        length = min(60.0, seconds - 60.0 * section)
        left = render(genre, length, SAMPLE_RATE, seed * 100 + section)
        right = render(genre, length, SAMPLE_RATE, seed * 100 + section + 50)
        sections.append(np.stack([left, 0.6 * left + 0.4 * right], axis=1))
    return np.concatenate(sections).astype(np.float32)


def _have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def _write_mp3(path: Path, samples: np.ndarray) -> None:
    if _have_ffmpeg():
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "2",
            "-i", "-", "-c:a", "libmp3lame", "-b:a", "192k", str(path),
        ]  # fmt: skip
        subprocess.run(command, input=samples.tobytes(), check=True)
    else:  # libsndfile's LAME at its default (VBR) quality
        soundfile.write(path, samples, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")


def _concat_mp3(path: Path, part: Path, copies: int, tmp: Path) -> None:
    """A long MP3 in bounded memory: the 4-minute one repeated (stream copy, no re-encoding)."""
    if _have_ffmpeg():
        listing = tmp / f"{path.stem}.txt"
        listing.write_text("".join(f"file '{part}'\n" for _ in range(copies)))
        command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
        subprocess.run([*command, "-c", "copy", str(path)], check=True)
        listing.unlink()
        return
    with (
        soundfile.SoundFile(path, "w", SAMPLE_RATE, 2, format="MP3", subtype="MPEG_LAYER_III") as out,
        soundfile.SoundFile(part) as source,
    ):
        for _ in range(copies):
            source.seek(0)
            for block in source.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                out.write(block)


def build_corpus(root: Path, n_tracks: int, quick: bool, small_count: int) -> Corpus:
    """Files already in ``root`` (a reused ``--corpus``) are kept; missing ones are generated."""
    root.mkdir(parents=True, exist_ok=True)
    tracks: list[Path] = []
    for i in range(n_tracks):
        extension = ".mp3" if i % 2 == 0 else ".flac"
        path = root / "tracks" / f"track{i:02d}{extension}"
        tracks.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        console.log(f"corpus: {path.name} (4 min stereo {extension[1:]})")
        samples = _stereo_track(GENRES[i % len(GENRES)], TRACK_SECONDS, seed=i)
        if extension == ".mp3":
            _write_mp3(path, samples)
        else:
            soundfile.write(path, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    first_mp3 = tracks[0]
    long_dir = root / "long"
    long_dir.mkdir(exist_ok=True)
    half_hour = None if quick else long_dir / "half-hour.mp3"
    two_hours = long_dir / "two-hours.mp3"
    for long_path, copies in ((half_hour, 8), (two_hours, 30)):
        if long_path is not None and not long_path.exists():
            console.log(f"corpus: {long_path.name} ({copies} x 4 min)")
            _concat_mp3(long_path, first_mp3, copies, root)
    small = root / f"small-{small_count}"
    if not (small / ".complete").exists():
        console.log(f"corpus: {small_count} tiny WAVs for the re-scan")
        rng = np.random.default_rng(0)
        for i in range(small_count):
            folder = small / f"album{i // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / f"{i:05d}.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000)
        (small / ".complete").write_text("")
    stub = root / "stub"
    stub.mkdir(exist_ok=True)
    if not (stub / "one-second.wav").exists():
        soundfile.write(stub / "one-second.wav", _stereo_track("techno", 1.0, seed=99), SAMPLE_RATE)
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    encoder = "ffmpeg libmp3lame CBR 192k" if _have_ffmpeg() else "libsndfile LAME VBR (no ffmpeg)"
    return Corpus(tracks, half_hour, two_hours, small, small_count, stub, empty, encoder)


def link_copy(files: Sequence[Path], folder: Path, copies: int = 1) -> Path:
    """Hard links (tag writes replace the file, so the corpus is never modified), else copies.

    ``copies`` > 1 links each file under several names: more tracks per scan, so that the scan's
    start-up cost, subtracted, leaves a per-track figure above the noise.
    """
    folder.mkdir(parents=True)
    for copy in range(copies):
        for path in files:
            name = path.name if copies == 1 else f"{path.stem}-{copy}{path.suffix}"
            try:
                os.link(path, folder / name)
            except OSError:
                shutil.copy2(path, folder / name)
    return folder


# ------------------------------------------------------------------ the benchmark
@dataclass
class Row:
    figure: str
    measured: str
    target: str = ""
    passed: bool | None = None  # None: informational
    note: str = ""


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    env: dict[str, str]
    model: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    tagger: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: ""}[row.passed]
        console.log(f"{row.figure}: {row.measured} {row.target} {verdict} {row.note}")

    def fresh(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name + "-", dir=self.work))
        return path

    def scan_command(self, folder: Path, db: Path, workers: int, *extra: str) -> list[str]:
        command = [*self.tagger, "scan", str(folder), "--db", str(db), "--model", self.model, "--json"]
        command += ["--workers", str(workers)]
        if self.args.max_windows:
            command += ["--max-windows", str(self.args.max_windows)]
        return [*command, *extra]

    def scan(self, files: Sequence[Path], workers: int, copies: int = 1) -> Measured:
        """A real ``tagger scan`` of ``files`` (hard-linked into a fresh folder) with a fresh database."""
        folder = self.fresh("scan")
        link_copy(files, folder / "music", copies)
        result = measure(self.scan_command(folder / "music", folder / "tagger.db", workers), self.env)
        _check_scan(result, len(files) * copies)
        shutil.rmtree(folder, ignore_errors=True)
        return result


def _scan_counts(result: Measured) -> dict[str, int]:
    try:
        return dict(json.loads(result.stdout)["counts"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}


def _check_scan(result: Measured, expected: int) -> None:
    counts = _scan_counts(result)
    done = sum(n for outcome, n in counts.items() if outcome != "failed")
    if result.returncode != 0 or counts.get("failed") or done != expected:
        raise SystemExit(f"scan did not process {expected} tracks cleanly: {counts or result.stdout[-500:]}")


def _busy_note(others: float) -> str:
    if others > OTHERS_IDLE_MAX:
        return f"; other processes kept {others:.2f} cores busy meanwhile: wall inflated (idle: wall ~ CPU)"
    return ""


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def bench_decode(bench: Bench, corpus: Corpus) -> dict[str, float]:
    """The floor: each file decoded in full, nothing else (soundfile at native rate; ffmpeg to null)."""
    repeat = bench.args.repeat
    per_file_cpu, per_file_wall, ffmpeg_cpu = [], [], []
    for path in corpus.tracks:
        cpu, wall = [], []
        for _ in range(repeat):
            c, w = time.process_time(), time.perf_counter()
            soundfile.read(path, dtype="float32", always_2d=True)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        per_file_cpu.append(median(cpu))
        per_file_wall.append(median(wall))
        if _have_ffmpeg():
            command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"]
            ffmpeg_cpu.append(median([measure(command, bench.env).cpu for _ in range(repeat)]))
    decode = {
        "cpu": float(np.mean(per_file_cpu)),
        "wall": float(np.mean(per_file_wall)),
        "ffmpeg_cpu": float(np.mean(ffmpeg_cpu)) if ffmpeg_cpu else float("nan"),
    }
    for kind in (".mp3", ".flac"):
        chosen = [c for c, p in zip(per_file_cpu, corpus.tracks, strict=True) if p.suffix == kind]
        decode[f"cpu{kind}"] = float(np.mean(chosen)) if chosen else float("nan")
    bench.raw["decode"] = decode
    note = f"mp3 {decode['cpu.mp3']:.3f} s, flac {decode['cpu.flac']:.3f} s"
    bench.add(Row("decode only, soundfile full read (CPU/track)", _fmt_s(decode["cpu"]), note=note))
    if ffmpeg_cpu:
        bench.add(Row("decode only, ffmpeg -f null (CPU/track)", _fmt_s(decode["ffmpeg_cpu"])))
    return decode


def bench_scans(bench: Bench, corpus: Corpus, decode: dict[str, float]) -> dict[int, dict[str, float]]:
    """Whole ``tagger scan`` per track, 1 and 2 workers; start-up measured on a one-second track."""
    copies = -(-bench.args.scanned // len(corpus.tracks))
    n = len(corpus.tracks) * copies
    stub = sorted(corpus.stub.iterdir())
    figures: dict[int, dict[str, float]] = {}
    for workers in (1, 2):
        runs, starts = [], []
        for _ in range(bench.args.repeat):  # interleaved, so a change of load hits both alike
            runs.append(bench.scan(corpus.tracks, workers, copies))
            starts.append(bench.scan(stub, workers))
        cpu, wall = median([r.cpu for r in runs]), median([r.wall for r in runs])
        cpu0, wall0 = median([r.cpu for r in starts]), median([r.wall for r in starts])
        figures[workers] = {
            "cpu_total": cpu,
            "wall_total": wall,
            "startup_cpu": cpu0,
            "startup_wall": wall0,
            "cpu_per_track": (cpu - cpu0) / (n - 1),
            "wall_per_track": (wall - wall0) / (n - 1),
            "worker_peak_mb": max(r.peak_mb.get("worker", 0.0) for r in runs),
            "main_peak_mb": max(r.peak_mb.get("main", 0.0) for r in runs),
            "others": max(r.others for r in runs + starts),
        }
        f = figures[workers]
        bench.add(
            Row(
                f"scan, {workers} worker{'s' * (workers > 1)}: per track (CPU / wall)",
                f"{_fmt_s(f['cpu_per_track'])} / {_fmt_s(f['wall_per_track'])}",
                note=f"{n} tracks ({len(corpus.tracks)} files x {copies}); start-up ({_fmt_s(cpu0)} CPU, "
                f"{_fmt_s(wall0)} wall) not included; other processes used at most {f['others']:.2f} "
                "cores meanwhile",
            )
        )
    ratio = figures[1]["cpu_per_track"] / decode["cpu"]
    bench.add(
        Row(
            "scan CPU / decode-only CPU (same files)",
            f"{ratio:.2f}x",
            f"<= {SCAN_VS_DECODE_MAX:g}x",
            ratio <= SCAN_VS_DECODE_MAX,
        )
    )
    one, two = figures[1]["wall_per_track"], figures[2]["wall_per_track"]
    speedup = one / two if one > 0 and two > 0 else float("nan")
    others = max(figures[1]["others"], figures[2]["others"])
    bench.add(
        Row(
            "2 workers vs 1 (wall per track)",
            f"{speedup:.2f}x",
            f">= {WORKER_SPEEDUP_MIN:g}x on {os.cpu_count()} cores",
            speedup >= WORKER_SPEEDUP_MIN,
            note=f"other processes used at most {others:.2f} cores during these scans"
            + (": idle enough to judge" if others <= OTHERS_IDLE_MAX else ": machine shared, not meaningful here"),
        )
    )
    bench.raw["scan"] = figures
    return figures


def bench_memory(bench: Bench, corpus: Corpus, scans: dict[int, dict[str, float]]) -> None:
    """A worker's peak RSS on 4-minute tracks vs a 30-minute and a 2-hour file (bounded memory)."""
    four = scans[1]["worker_peak_mb"]
    bench.add(
        Row(
            "worker peak RSS, 4-min tracks",
            f"{four:.0f} MB",
            f"< {WORKER_RSS_MAX_MB:g} MB",
            four < WORKER_RSS_MAX_MB,
            note=f"scan main process {scans[1]['main_peak_mb']:.0f} MB",
        )
    )
    long_files = [p for p in (corpus.half_hour, corpus.two_hours) if p is not None]
    for path in long_files:
        result = bench.scan([path], 1)
        peak = result.peak_mb.get("worker", 0.0)
        minutes = soundfile.info(str(path)).duration / 60
        bench.raw.setdefault("long", {})[path.name] = asdict(result) | {"stdout": ""}
        is_two_hours = path == corpus.two_hours
        bench.add(
            Row(
                f"worker peak RSS, {minutes:.0f}-min file",
                f"{peak:.0f} MB",
                f"<= {LONG_TRACK_RSS_SLACK:g} x 4-min ({four * LONG_TRACK_RSS_SLACK:.0f} MB)" if is_two_hours else "",
                peak <= four * LONG_TRACK_RSS_SLACK if is_two_hours else None,
                note=f"scan of it alone: {_fmt_s(result.cpu)} CPU, {_fmt_s(result.wall)} wall (incl. start-up)",
            )
        )


def bench_daemon(bench: Bench, corpus: Corpus) -> None:
    """``tagger watch`` on an empty folder, once it says it is watching: resident memory of its tree."""
    help_run = subprocess.run([*bench.tagger, "watch", "--help"], capture_output=True, env=bench.env, check=False)
    if help_run.returncode != 0:
        bench.add(Row("idle daemon RSS", "skipped", f"< {DAEMON_RSS_MAX_MB:g} MB", note="no `tagger watch` yet"))
        return
    folder = bench.fresh("watch")
    db = folder / "tagger.db"
    command = [*bench.tagger, "watch", str(corpus.empty), "--db", str(db), "--model", bench.model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=bench.env)
    status = folder / "tagger.db.status.json"
    state = "?"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError, json.JSONDecodeError):
                state = json.loads(status.read_text()).get("state", "?")
            if state == "watching":
                break
            time.sleep(0.2)
        time.sleep(3.0)  # settle: nothing to do
        sampler = MemorySampler(process.pid)
        sampler.sample()
        now = sampler.current_mb()
        peak = sum(sampler.peak_kb.values()) / 1024
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    bench.raw["daemon"] = {"rss_mb": now, "peak_mb": peak, "state": state}
    bench.add(
        Row(
            "idle daemon RSS (tagger watch, empty folder)",
            f"{now:.0f} MB",
            f"< {DAEMON_RSS_MAX_MB:g} MB",
            now < DAEMON_RSS_MAX_MB,
            note=f"state {state!r}; peak {peak:.0f} MB; processes {len(sampler.peak_kb)}",
        )
    )
    shutil.rmtree(folder, ignore_errors=True)


def bench_rescan(bench: Bench, corpus: Corpus) -> None:
    """An unchanged library scanned again (stat only): the real command, scaled to 10,000 tracks."""
    folder = bench.fresh("rescan")
    db = folder / "tagger.db"
    n = corpus.small_count
    first = measure(bench.scan_command(corpus.small_library, db, 2), bench.env)
    _check_scan(first, n)
    # The first scan wrote tags (replacing files): later scans see them unchanged. Start-up: the
    # same command and database on an empty folder (no file to stat); interleaved, medians.
    again, empty = [], []
    for _ in range(max(3, bench.args.repeat)):
        again.append(measure(bench.scan_command(corpus.small_library, db, 1), bench.env))
        empty.append(measure(bench.scan_command(corpus.empty, db, 1), bench.env))
        if _scan_counts(again[-1]).get("skipped") != n:
            raise SystemExit(f"re-scan did not skip all {n} tracks: {_scan_counts(again[-1])}")
    wall, wall0 = median([r.wall for r in again]), median([r.wall for r in empty])
    cpu, cpu0 = median([r.cpu for r in again]), median([r.cpu for r in empty])
    per_10k = wall0 + max(0.0, wall - wall0) * 10_000 / n
    cpu_10k = cpu0 + max(0.0, cpu - cpu0) * 10_000 / n
    bench.raw["rescan"] = {
        "tracks": n, "wall": wall, "startup_wall": wall0, "cpu": cpu, "startup_cpu": cpu0,
        "per_10k": per_10k, "cpu_per_10k": cpu_10k, "first_wall": first.wall, "first_cpu": first.cpu,
    }  # fmt: skip
    bench.add(
        Row(
            "unchanged re-scan, per 10,000 tracks (wall)",
            _fmt_s(per_10k),
            f"< {RESCAN_10K_MAX_S:g} s",
            per_10k < RESCAN_10K_MAX_S,
            note=f"CPU {_fmt_s(cpu_10k)}; = start-up + (T - start-up) x 10,000 / {n}: {n} tracks T = {_fmt_s(wall)}, "
            f"empty folder {_fmt_s(wall0)}" + (" (the stats cost less than the noise)" if wall <= wall0 else ""),
        )
    )
    bench.add(
        Row(
            "first scan of the same tiny files, per track (wall / CPU, 2 workers)",
            f"{1000 * first.wall / n:.1f} / {1000 * first.cpu / n:.1f} ms",
            note="fixed cost per classified track: IPC, database, tag write",
        )
    )
    shutil.rmtree(folder, ignore_errors=True)


def bench_cold_start(bench: Bench, corpus: Corpus) -> None:
    """``tagger classify FILE`` in a new process, 4-minute MP3; ``tagger version`` = Python + imports."""
    path = corpus.tracks[0]
    command = [*bench.tagger, "classify", str(path), "--model", bench.model, "--json"]
    if bench.args.max_windows:
        command += ["--max-windows", str(bench.args.max_windows)]
    runs = [measure(command, bench.env) for _ in range(max(3, bench.args.repeat))]
    if any(r.returncode for r in runs):
        raise SystemExit("tagger classify failed")
    imports = [measure([*bench.tagger, "version"], bench.env) for _ in range(max(3, bench.args.repeat))]
    wall = median([r.wall for r in runs])
    windows = len(json.loads(runs[0].stdout).get("windows", []))
    bench.raw["cold_start"] = {
        "wall": wall,
        "cpu": median([r.cpu for r in runs]),
        "imports": median([r.wall for r in imports]),
    }
    bench.add(
        Row(
            "classify cold start, 4-min MP3 (wall)",
            _fmt_s(wall),
            f"< {COLD_START_MAX_S:g} s",
            wall < COLD_START_MAX_S,
            note=(
                f"{windows} windows; CPU {_fmt_s(bench.raw['cold_start']['cpu'])}; "
                f"`tagger version` {_fmt_s(bench.raw['cold_start']['imports'])}"
                + _busy_note(max(r.others for r in runs))
            ),
        )
    )


def _child(bench: Bench, kind: str, files: Sequence[Path], env: dict[str, str] | None = None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "_child", kind, bench.model, str(bench.args.repeat)]
    result = measure([*command, *map(str, files)], {**bench.env, **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"{kind} child failed")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def bench_naive(bench: Bench, corpus: Corpus, scans: dict[int, dict[str, float]]) -> None:
    scan_cpu = scans[1]["cpu_per_track"]
    naive = _child(bench, "naive", corpus.tracks)
    bench.raw["naive"] = naive
    _add_baseline(
        bench,
        "naive baseline: librosa.load + melspectrogram + invoke per window",
        naive,
        f"first track (imports, numba JIT) {naive['warm_up']:.1f} s not counted; 1 BLAS thread",
        scan_cpu,
    )
    title = "naive baseline, Keras: librosa.load + melspectrogram + model.predict per window"
    checkpoint = _keras_checkpoint(bench)
    if isinstance(checkpoint, Unavailable):
        bench.add(Row(f"{title} (CPU/track)", "skipped", note=checkpoint.reason))
        return
    from tagger.train.musicnn.pretrained import ENV_DIR

    keras = _child(bench, "keras", corpus.tracks[:2], env={ENV_DIR: checkpoint})
    bench.raw["naive_keras"] = keras
    note = f"{keras['tracks']} tracks, once; float backbone, 1 TensorFlow thread; first track not counted"
    _add_baseline(bench, title, keras, note, scan_cpu, versus="Keras naive baseline")


def _add_baseline(
    bench: Bench, title: str, figures: dict[str, Any], note: str, scan_cpu: float, versus: str = "naive baseline"
) -> None:
    """A baseline's CPU per track, then the scan's speed-up over it against the target."""
    bench.add(
        Row(
            f"{title} (CPU/track)",
            _fmt_s(figures["cpu"]),
            note=f"wall {_fmt_s(figures['wall'])}; {figures['windows']:.0f} windows; {note}",
        )
    )
    speedup = figures["cpu"] / scan_cpu
    bench.add(
        Row(
            f"scan vs {versus} (CPU per track)",
            f"{speedup:.1f}x faster",
            f">= {NAIVE_SPEEDUP_MIN:g}x",
            speedup >= NAIVE_SPEEDUP_MIN,
        )
    )


@dataclass(frozen=True)
class Unavailable:
    reason: str


def _keras_checkpoint(bench: Bench) -> str | Unavailable:
    """The musicnn checkpoint for the Keras baseline, or why that baseline cannot run here."""
    import importlib.util

    from tagger.model import load_card

    name = load_card(bench.model).name
    if name != "musicnn":
        return Unavailable(f"card {name!r} ships no Keras model (musicnn's backbone is rebuilt from its checkpoint)")
    if importlib.util.find_spec("tensorflow") is None:
        return Unavailable("needs TensorFlow: pip install .[train]")
    from tagger.train.musicnn.pretrained import PretrainedNotFound, locate_checkpoint

    try:
        return locate_checkpoint(download=False)
    except PretrainedNotFound as error:
        return Unavailable(f"no musicnn checkpoint here ({error})")


def bench_model(bench: Bench, corpus: Corpus) -> None:
    """Model milliseconds per window, 1 thread: the card's file and, for musicnn, the file it replaced."""
    data = _child(bench, "model", corpus.tracks[:1])
    bench.raw["model"] = data
    for name, figures in data["files"].items():
        bench.add(
            Row(
                f"model ms per window, 1 thread: {name}",
                f"{figures['cpu_ms']:.1f} ms",
                note=f"CPU time, best of {figures['repeats']} predicts of {data['windows']} windows (batches of 8); "
                f"wall {figures['wall_ms']:.1f} ms; {figures['bytes'] / 1e6:.1f} MB; {data['runtime']}",
            )
        )
    if "baseline" in data["files"]:
        speedup = data["files"]["baseline"]["cpu_ms"] / data["files"]["shipped"]["cpu_ms"]
        bench.add(
            Row(
                "model speed-up over the previous file (ms per window, 1 thread)",
                f"{speedup:.1f}x",
                f">= {MODEL_SPEEDUP_MIN:g}x",
                speedup >= MODEL_SPEEDUP_MIN,
                note=f"previous: {data['baseline_file']}",
            )
        )


def bench_windows(bench: Bench, corpus: Corpus) -> Table:
    data = _child(bench, "windows", corpus.tracks)
    bench.raw["windows"] = data
    table = Table(title="analyse_track per 4-min track by max_windows (in-process, model loaded; CPU s, medians)")
    for column in ("max_windows", "windows", "CPU total", "decode", "features", "model", "wall", "mp3 CPU", "flac CPU"):
        table.add_column(column, justify="right")
    for setting in data["settings"]:
        table.add_row(
            setting["label"],
            f"{setting['windows']:.0f}",
            f"{setting['cpu']:.3f}",
            f"{setting['decode']:.3f}",
            f"{setting['cpu'] - setting['decode'] - setting['model']:.3f}",
            f"{setting['model']:.3f}",
            f"{setting['wall']:.3f}",
            f"{setting['cpu.mp3']:.3f}",
            f"{setting['cpu.flac']:.3f}",
        )
    return table


# ------------------------------------------------------------------ child processes (measured alone)
def _librosa_windows(path: Path, card: Any) -> np.ndarray:
    """The usual GTZAN-project front half: the whole track through librosa at the model's rate, then windows."""
    import librosa

    p = card.features
    y, sr = librosa.load(path, sr=p.sample_rate)
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
        power=p.power, htk=p.mel_htk, norm=p.mel_norm,
    )  # fmt: skip
    db = (librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T - np.asarray(p.mean)) / np.asarray(p.std)
    starts = range(0, len(db) - p.window_frames + 1, p.window_hop_frames)
    windows = np.stack([db[begin : begin + p.window_frames] for begin in starts]).astype(np.float32)
    return windows[..., None] if card.input_layout == "frames_mels_channel" else windows


def _time_tracks(one_track: Callable[[Path], int], files: list[Path], repeat: int) -> dict[str, Any]:
    """Mean over ``files`` of the median over ``repeat`` runs; the first file once before, untimed (imports, JIT)."""
    start = time.perf_counter()
    one_track(files[0])
    warm_up = time.perf_counter() - start
    cpu, wall, windows = [], [], []
    for path in files:
        c, w = [], []
        for _ in range(repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            count = one_track(path)
            c.append(time.process_time() - c0)
            w.append(time.perf_counter() - w0)
        cpu.append(median(c))
        wall.append(median(w))
        windows.append(count)
    return {"cpu": float(np.mean(cpu)), "wall": float(np.mean(wall)), "windows": float(np.mean(windows)),
            "warm_up": warm_up, "tracks": len(files)}  # fmt: skip


def child_naive(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """Whole track through librosa, then one interpreter call per window (batch 1)."""
    from threadpoolctl import threadpool_limits

    from tagger.model import interpreter_class, load_card

    threadpool_limits(1, user_api="blas")  # as the tagger: a fair CPU figure on a shared machine
    card = load_card(model)
    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(card.model_file), num_threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def one_track(path: Path) -> int:
        windows = _librosa_windows(path, card)
        for window in windows:
            window = window[None]
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                info = np.iinfo(detail["dtype"])
                window = np.clip(np.round(window / scale + zero), info.min, info.max)
            interpreter.set_tensor(detail["index"], window.astype(detail["dtype"]))
            interpreter.invoke()
            for index in outputs:
                interpreter.get_tensor(index)
        return len(windows)

    return _time_tracks(one_track, files, repeat)


def child_keras(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """Whole track through librosa, then Keras ``model.predict`` per window on the float musicnn backbone
    (rebuilt from its checkpoint; the genre head's one Dense layer is left out: it costs nothing)."""
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    from tagger.model import load_card
    from tagger.train.musicnn.port import load_pretrained

    threadpool_limits(1, user_api="blas")
    tf.config.threading.set_intra_op_parallelism_threads(1)  # one core, as the tagger's worker
    tf.config.threading.set_inter_op_parallelism_threads(1)
    card = load_card(model)
    network, _ = load_pretrained(download=False)

    def one_track(path: Path) -> int:
        windows = _librosa_windows(path, card)
        for window in windows:
            network.predict(window[None], verbose=0)
        return len(windows)

    return _time_tracks(one_track, files, 1)


def child_windows(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """``analyse_track`` per track for each max_windows, split into decode / features / model CPU."""
    import numpy.typing as npt

    from tagger import audio
    from tagger.model import Classifier, Prediction, load_card
    from tagger.pipeline import WINDOW_CAP, analyse_track

    clock = {"model": 0.0, "decode": 0.0}

    class TimedClassifier(Classifier):
        def predict(self, windows: npt.NDArray[np.float32]) -> Prediction:
            start = time.process_time()
            try:
                return super().predict(windows)
            finally:
                clock["model"] += time.process_time() - start

    read_segments = audio.read_segments

    def timed_segments(*args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        segments = read_segments(*args, **kwargs)
        while True:
            start = time.process_time()
            try:
                segment = next(segments)
            except StopIteration:
                clock["decode"] += time.process_time() - start
                return
            clock["decode"] += time.process_time() - start
            yield segment

    audio.read_segments = timed_segments  # type: ignore[assignment]
    classifier = TimedClassifier(load_card(model), threads=1)
    analyse_track(files[0], classifier, 4)  # warm-up
    settings = []
    for max_windows in WINDOW_SETTINGS:
        per_file: dict[str, list[float]] = {"cpu": [], "wall": [], "model": [], "decode": [], "windows": []}
        for path in files:
            runs: dict[str, list[float]] = {key: [] for key in per_file}
            for _ in range(repeat):
                clock.update(model=0.0, decode=0.0)
                c0, w0 = time.process_time(), time.perf_counter()
                analysis = analyse_track(path, classifier, max_windows or WINDOW_CAP)
                runs["cpu"].append(time.process_time() - c0)
                runs["wall"].append(time.perf_counter() - w0)
                runs["model"].append(clock["model"])
                runs["decode"].append(clock["decode"])
                runs["windows"].append(len(analysis.window_starts))
            for key, values in runs.items():
                per_file[key].append(median(values))
        setting: dict[str, Any] = {key: float(np.mean(values)) for key, values in per_file.items()}
        setting["label"] = f"all (<= {WINDOW_CAP})" if max_windows is None else str(max_windows)
        for kind in (".mp3", ".flac"):
            chosen = [c for c, p in zip(per_file["cpu"], files, strict=True) if p.suffix == kind]
            setting[f"cpu{kind}"] = float(np.mean(chosen)) if chosen else float("nan")
        settings.append(setting)
    return {"settings": settings}


def child_model(model: str, repeat: int, files: list[Path]) -> dict[str, Any]:
    """The card's model file and its baseline (if any) on the same real windows, alternately, 1 thread."""
    import dataclasses

    from tagger.model import Classifier, load_card
    from tagger.pipeline import analyse_track

    card = load_card(model)
    windows: list[np.ndarray] = []

    class Keep(Classifier):  # the pipeline's own windows of a real track
        def predict(self, batch: np.ndarray) -> Any:
            windows.append(batch)
            return super().predict(batch)

    analyse_track(files[0], Keep(card, threads=1), MODEL_WINDOWS)
    batch = np.concatenate(windows)
    baseline = BASELINE_MODELS.get(card.name)
    cards = {"shipped": card}
    if baseline is not None and baseline.exists():
        cards["baseline"] = dataclasses.replace(card, model_file=baseline)
    classifiers = {name: Classifier(c, threads=1) for name, c in cards.items()}
    for classifier in classifiers.values():
        classifier.predict(batch[:8])  # warm-up: allocation, weight packing
    best = {name: (float("inf"), float("inf")) for name in classifiers}
    repeats = max(3, repeat)
    for _ in range(repeats):
        for name, classifier in classifiers.items():
            c0, w0 = time.process_time(), time.perf_counter()
            classifier.predict(batch)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    return {
        "windows": len(batch),
        "runtime": next(iter(classifiers.values())).runtime,
        "baseline_file": str(baseline.relative_to(REPO)) if "baseline" in cards and baseline else None,
        "files": {
            name: {"cpu_ms": 1000 * cpu / len(batch), "wall_ms": 1000 * wall / len(batch), "repeats": repeats,
                   "bytes": cards[name].model_file.stat().st_size}
            for name, (cpu, wall) in best.items()
        },
    }  # fmt: skip


CHILDREN: dict[str, Callable[[str, int, list[Path]], dict[str, Any]]] = {
    "naive": child_naive,
    "keras": child_keras,
    "windows": child_windows,
    "model": child_model,
}


# ------------------------------------------------------------------ main
def _tagger_command() -> list[str]:
    script = Path(sys.executable).parent / "tagger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tagger.cli"]


def _isolated_env(work: Path) -> dict[str, str]:
    """No user config, database or caches: XDG dirs inside the work folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("TAGGER_DB", "TAGGER_CONFIG")}
    env["TAGGER_CONFIG"] = str(work / "no-config.toml")
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[name] = str(work / "xdg" / name.lower())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _default_model() -> str:
    from tagger.errors import ModelError
    from tagger.model import DEFAULT_MODEL, load_card

    try:
        load_card(DEFAULT_MODEL)
        return DEFAULT_MODEL
    except ModelError:
        return str(FALLBACK_MODEL)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="genre-tagger speed benchmark (see bench/README.md)")
    parser.add_argument("--tracks", type=int, help="4-minute tracks, half MP3 half FLAC [8; --quick 4]")
    parser.add_argument("--model", help="shipped model name or card path [the shipped default, else tiny fixture]")
    parser.add_argument("--quick", action="store_true", help="fewer tracks and repeats, no 30-minute file")
    parser.add_argument("--corpus", type=Path, help="keep the corpus here (reused by later runs) [a temp dir]")
    parser.add_argument("--repeat", type=int, help="runs per figure, medians reported [3; --quick 1]")
    parser.add_argument("--small", type=int, help="tiny files in the re-scan library [2000; --quick 1000]")
    parser.add_argument("--scanned", type=int, help="tracks per timed scan: the files linked N times [48; --quick 12]")
    parser.add_argument("--max-windows", type=int, help="passed to scan and classify [the model's default]")
    parser.add_argument("--json", type=Path, help="also write every raw figure here")
    args = parser.parse_args(argv)
    args.tracks = max(2, args.tracks or (4 if args.quick else 8))
    args.repeat = max(1, args.repeat or (1 if args.quick else 3))
    args.small = max(10, args.small or (1000 if args.quick else 2000))
    args.scanned = max(args.tracks, args.scanned or (12 if args.quick else 48))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        kind, model, repeat, *files = argv[1:]
        print(json.dumps(CHILDREN[kind](model, int(repeat), [Path(f) for f in files])))
        return 0
    args = parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tagger-bench-") as tmp:
        work = Path(tmp)
        bench = Bench(args, work, _isolated_env(work), args.model or _default_model(), tagger=_tagger_command())
        corpus = build_corpus(args.corpus or work / "corpus", args.tracks, args.quick, args.small)
        console.log(f"model {bench.model}; {args.tracks} tracks; repeat {args.repeat}; load {load_start}")
        decode = bench_decode(bench, corpus)
        bench_cold_start(bench, corpus)
        scans = bench_scans(bench, corpus, decode)
        bench_memory(bench, corpus, scans)
        bench_daemon(bench, corpus)
        bench_rescan(bench, corpus)
        bench_naive(bench, corpus, scans)
        bench_model(bench, corpus)
        windows = bench_windows(bench, corpus)
    load_end = os.getloadavg()
    report(bench, corpus, windows, load_start, load_end)
    if args.json:
        bench.raw["rows"] = [asdict(r) for r in bench.rows]
        bench.raw["load"] = {"start": load_start, "end": load_end, "cpus": os.cpu_count()}
        args.json.write_text(json.dumps(bench.raw, indent=2, default=str))
    return 0 if all(r.passed is not False for r in bench.rows) else 1


def report(
    bench: Bench, corpus: Corpus, windows: Table, load_start: tuple[float, ...], load_end: tuple[float, ...]
) -> None:
    out = Console(width=None if sys.stdout.isatty() else 200)  # a file or pipe: no wrapping at 80
    loads = ", ".join(f"{x:.1f}" for x in load_start) + " -> " + ", ".join(f"{x:.1f}" for x in load_end)
    from tagger.model import load_card

    card = load_card(bench.model)
    windows_policy = bench.args.max_windows or card.max_windows
    policy = f"max_windows {windows_policy}" if windows_policy else "every window (model default)"
    table = Table(
        title=f"genre-tagger speed: {card.model_id}, {policy}; {len(corpus.tracks)} x 4-min tracks, "
        f"repeat {bench.args.repeat}, medians",
        caption=f"load average (1/5/15 min) {loads} on {os.cpu_count()} cores; MP3: {corpus.mp3_encoder}",
    )
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target")
    table.add_column("")
    table.add_column("note")
    for row in bench.rows:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: ""}[row.passed]
        table.add_row(row.figure, row.measured, row.target, verdict, row.note)
    out.print(table)
    out.print(windows)


if __name__ == "__main__":
    sys.exit(main())
