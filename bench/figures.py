"""The figures of the real commands (``tagger scan``, ``classify``, ``watch``), each row beside its target."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from bench.corpus import Corpus, copy_files, have_ffmpeg
from bench.measure import Measured, MemorySampler, console, measure, median
from tagger.model import ModelCard, load_card

OTHERS_IDLE_MAX = 0.25  # cores other processes may use during a wall-time figure before it is called unfair

# Targets (the performance issue's).
SCAN_VS_DECODE_MAX = 2.0
RESCAN_10K_MAX_S = 10.0
WORKER_RSS_MAX_MB = 300.0
LONG_TRACK_RSS_SLACK = 1.15  # 2-hour worker peak within 15 % of the 4-minute one
DAEMON_RSS_MAX_MB = 150.0
COLD_START_MAX_S = 2.0
WORKER_SPEEDUP_MIN = 1.7
HEAD_CPU_GROWTH_MAX = 1.25  # the default head's scan CPU per track over the old default's (the genres issue)
OLD_DEFAULT_HEAD = "gtzan"  # the paper's ten GTZAN genres: the default before the real-world vocabulary
MOODS_CPU_GROWTH_MAX = 0.05  # what moods add to a scan's CPU per track (the moods issue)


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

    def scan_command(self, folder: Path, db: Path, workers: int, *extra: str, model: str | None = None) -> list[str]:
        command = [*self.tagger, "scan", str(folder), "--db", str(db), "--model", model or self.model, "--json"]
        command += ["--workers", str(workers)]
        if self.args.max_windows:
            command += ["--max-windows", str(self.args.max_windows)]
        return [*command, *extra]

    def scan(
        self, files: Sequence[Path], workers: int, copies: int = 1, *extra: str, model: str | None = None
    ) -> Measured:
        """A real ``tagger scan`` of ``files`` (copied into a fresh folder) with a fresh database."""
        folder = self.fresh("scan")
        copy_files(files, folder / "music", copies)
        command = self.scan_command(folder / "music", folder / "tagger.db", workers, *extra, model=model)
        result = measure(command, self.env)
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


def fmt_s(seconds: float) -> str:
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
        if have_ffmpeg():
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
    bench.add(Row("decode only, soundfile full read (CPU/track)", fmt_s(decode["cpu"]), note=note))
    if ffmpeg_cpu:
        bench.add(Row("decode only, ffmpeg -f null (CPU/track)", fmt_s(decode["ffmpeg_cpu"])))
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
                f"{fmt_s(f['cpu_per_track'])} / {fmt_s(f['wall_per_track'])}",
                note=f"{n} tracks ({len(corpus.tracks)} files x {copies}); start-up ({fmt_s(cpu0)} CPU, "
                f"{fmt_s(wall0)} wall) not included; other processes used at most {f['others']:.2f} "
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


def _card_without(bench: Bench, heads: Sequence[str], name: str, default_head: str | None = None) -> Path:
    """A copy of the bench's card without ``heads`` (and without its ``mood_head`` if that is one of them),
    written into the work folder as ``name``; the model file stays the shipped one."""
    card = load_card(bench.model)
    raw = json.loads(json.dumps(card.raw))
    raw["heads"] = {head: data for head, data in raw["heads"].items() if head not in heads}
    if default_head is not None:
        raw["default_head"] = default_head
    if raw.get("mood_head") in heads:
        del raw["mood_head"]
    raw["model_file"] = str(card.model_file)
    path = bench.work / name
    path.write_text(json.dumps(raw))
    return path


def _paired_scan_cpu(bench: Bench, corpus: Corpus, other_card: Path) -> tuple[float, float, int]:
    """Scan CPU per track with the bench's card and with ``other_card`` (1 worker, ``--dry-run``, so that a head
    that abstains where the other tags is not charged less for skipping the tag write): pairs run in turn, so a
    change of load hits both alike; each minus the same start-up scan of a one-second track."""
    copies = -(-bench.args.scanned // len(corpus.tracks))
    n = len(corpus.tracks) * copies
    stub = sorted(corpus.stub.iterdir())
    new, old, starts = [], [], []
    for _ in range(bench.args.repeat):
        new.append(bench.scan(corpus.tracks, 1, copies, "--dry-run").cpu)
        old.append(bench.scan(corpus.tracks, 1, copies, "--dry-run", model=str(other_card)).cpu)
        starts.append(bench.scan(stub, 1, 1, "--dry-run").cpu)
    start = median(starts)
    return (median(new) - start) / (n - 1), (median(old) - start) / (n - 1), n


def bench_default_head(bench: Bench, corpus: Corpus) -> None:
    """Scan CPU per track with the shipped card against the same model without its linear genre heads.

    Every scan computes all of a card's heads, whichever vocabulary it writes, so what the default
    ``genres`` head (a logistic layer over embedding + taggram, in numpy) adds is measured against a copy
    of the card without it, the old default (``gtzan``) as its default: the model before the real-world
    vocabulary. The mood head stays in both (its own row is :func:`bench_moods`).
    """
    card = load_card(bench.model)
    linear = [name for name, head in card.heads.items() if head.kind == "linear" and head.role == "genre"]
    if not linear:
        bench.add(Row("linear heads' cost (scan CPU/track)", "skipped", note="the model has no linear head"))
        return
    kept = [name for name in card.heads if name not in linear]
    default = OLD_DEFAULT_HEAD if OLD_DEFAULT_HEAD in kept else next(n for n in kept if card.heads[n].role == "genre")
    old_card = _card_without(bench, linear, "without-linear-heads.json", default)
    per_new, per_old, n = _paired_scan_cpu(bench, corpus, old_card)
    ratio = per_new / per_old if per_old > 0 else float("nan")
    bench.raw["default_head"] = {"linear_heads": linear, "cpu_per_track": per_new, "old_cpu_per_track": per_old}
    bench.add(
        Row(
            f"with the {'/'.join(linear)} head vs without (scan CPU/track)",
            f"{ratio:.2f}x",
            f"<= {HEAD_CPU_GROWTH_MAX:g}x",
            ratio <= HEAD_CPU_GROWTH_MAX,
            note=f"{fmt_s(per_new)} vs {fmt_s(per_old)} per track ({default} default without), "
            f"{n} tracks, 1 worker, --dry-run",
        )
    )


def bench_moods(bench: Bench, corpus: Corpus) -> None:
    """What moods add to a scan: CPU per track with the card against a copy of it without its mood head.

    The mood head is one more linear head over outputs the graph already computes (no second decode, no
    other inference), and its decision is recorded beside the genres; ``--dry-run`` scans, pairs in turn.
    """
    card = load_card(bench.model)
    if card.mood_head is None:
        bench.add(Row("moods' extra cost (scan CPU/track)", "skipped", note="the model has no mood head"))
        return
    per_new, per_old, n = _paired_scan_cpu(bench, corpus, _card_without(bench, [card.mood_head], "without-moods.json"))
    extra = per_new / per_old - 1 if per_old > 0 else float("nan")
    head_s, track_s = _mood_work_cpu(card, corpus.tracks[0], bench.args.max_windows)
    bench.raw["moods"] = {
        "mood_head": card.mood_head, "cpu_per_track": per_new, "without_cpu_per_track": per_old,
        "head_and_decision_cpu": head_s, "analysis_cpu": track_s,
    }  # fmt: skip
    bench.add(
        Row(
            f"moods' extra cost: with the {card.mood_head} head vs without (scan CPU/track)",
            f"{extra:+.1%}",
            f"< {MOODS_CPU_GROWTH_MAX:.0%}",
            extra < MOODS_CPU_GROWTH_MAX,
            note=f"{fmt_s(per_new)} vs {fmt_s(per_old)} per track, {n} tracks, 1 worker, --dry-run; in one process, "
            f"the head and its decision take {head_s * 1e6:.0f} us of a track's {fmt_s(track_s)} analysis "
            f"({head_s / track_s:.3%}), so where the scans differ more, that is the machine's noise",
        )
    )


def _mood_work_cpu(card: ModelCard, track: Path, max_windows: int | None) -> tuple[float, float]:
    """CPU seconds of what moods add to one track in process (the mood head over outputs the graph already
    gives, the decision and its database record), and of the track's whole analysis (best of 3)."""
    from tagger.aggregate import aggregate
    from tagger.model import Classifier
    from tagger.moods import mood_record
    from tagger.pipeline import analyse_track

    assert card.mood_head is not None
    head = card.heads[card.mood_head]
    classifier = Classifier(card, threads=1)
    analysis_cpu = []
    for _ in range(3):
        start = time.process_time()
        analysis = analyse_track(track, classifier, max_windows)
        analysis_cpu.append(time.process_time() - start)
    inputs = None
    if head.weights is not None:  # a linear head: its input rows, of any values (they do not change the cost)
        shape = (len(analysis.window_starts), head.weights.shape[0])
        inputs = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    runs = 200
    start = time.process_time()
    for _ in range(runs):
        rows = analysis.probabilities[head.name] if inputs is None else head.linear_probabilities(inputs)
        mood_record(aggregate(rows, head, 1), rows, head)
    return (time.process_time() - start) / runs, min(analysis_cpu)


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
                note=f"scan of it alone: {fmt_s(result.cpu)} CPU, {fmt_s(result.wall)} wall (incl. start-up)",
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
            fmt_s(per_10k),
            f"< {RESCAN_10K_MAX_S:g} s",
            per_10k < RESCAN_10K_MAX_S,
            note=f"CPU {fmt_s(cpu_10k)}; = start-up + (T - start-up) x 10,000 / {n}: {n} tracks T = {fmt_s(wall)}, "
            f"empty folder {fmt_s(wall0)}" + (" (the stats cost less than the noise)" if wall <= wall0 else ""),
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
            fmt_s(wall),
            f"< {COLD_START_MAX_S:g} s",
            wall < COLD_START_MAX_S,
            note=(
                f"{windows} windows; CPU {fmt_s(bench.raw['cold_start']['cpu'])}; "
                f"`tagger version` {fmt_s(bench.raw['cold_start']['imports'])}"
                + _busy_note(max(r.others for r in runs))
            ),
        )
    )
