"""The cluster path's cost on one machine, and what the recorder can feed: `tagger scan --cluster` vs the local pool.

    .venv/bin/python bench/cluster.py                                  # 4 x 4-min tracks copied 4 times, 2 workers
    .venv/bin/python bench/cluster.py --corpus ~/bench-corpus --copies 8 --workers 2 --model musicnn --json out.json

The same files are scanned through the real :class:`tagger.scan.Scanner` into a real PostgreSQL database (a
throw-away server, as the tests start one, unless ``--db`` names a server: a database per backend is created there),
alternately with the local process pool of W workers and with ``--cluster`` on a ``dask scheduler`` and ``dask worker
--nworkers W`` started as processes (``--local-cluster``: ``--cluster local:W``, a ``LocalCluster`` whose scheduler
runs in this process), ``--repeat`` times each, each time new copies; each backend first scans a warm-up folder, so
start-up (spawning, model loading, the database engine's first statements) is not timed.

Figures: tracks per second of each (median), the cluster path's overhead over the pool (target <= 15 %), the
scan process's per-track cost (wall time in this process in planning, storing and writing tags, and this process's
CPU per track, the Dask client's threads included; with ``--recording-processes P`` the storing and writing happen in
those, whose CPU per track is measured apart), the analysis's CPU per track (:func:`tagger.pipeline.analyse_track` in
this process with the model loaded), and from those a paper estimate: each worker process analyses 1/A tracks per
second, one scan process gets through 1/S, so it keeps up with A/S worker processes (target >= 50), and its
recording processes need 50/A x their CPU per track cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import build_tracks, copy_files
from bench.measure import console
from tagger.cluster import open_cluster
from tagger.model import Classifier, ModelCard, load_card
from tagger.pipeline import analyse_track
from tagger.record import Library, TagOptions
from tagger.scan import Scanner
from tagger.store import Database
from tagger.track import Outcome

OVERHEAD_MAX = 0.15
RECORDER_WORKERS_MIN = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder to reuse (its tracks/ are kept); default: temp")
    parser.add_argument("--tracks", type=int, default=4, help="distinct 4-minute tracks (MP3 and FLAC)")
    parser.add_argument("--copies", type=int, default=4, help="copies of each per scan")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recorders", type=int, default=4, help="tracks recorded at a time (the config's default)")
    parser.add_argument(
        "--recording-processes", type=int, default=0,
        help="processes recording, each --recorders at a time (0: the scanning process records, the default)",
    )  # fmt: skip
    parser.add_argument(
        "--local-cluster", action="store_true",
        help="--cluster local:W (scheduler in this process) instead of `dask scheduler` + `dask worker` processes",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2, help="timed scans per backend (median)")
    parser.add_argument("--model", default=None, help="shipped model or card (default: the shipped default)")
    parser.add_argument("--max-windows", type=int, default=None, help="default: the model card's")
    parser.add_argument(
        "--vocabulary", help="the head written (default: the card's; musicnn's abstains on these tracks)"
    )
    parser.add_argument("--cores-per-machine", type=int, default=16, help="for the per-machine estimate")
    parser.add_argument("--db", help="a PostgreSQL server URL (a database per backend is made); default: throw-away")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    return parser.parse_args(argv)


@contextlib.contextmanager
def database_server(url: str | None) -> Iterator[Callable[[], str]]:
    """A function giving a new empty database's URL on the server."""
    if url:
        import uuid

        from sqlalchemy import create_engine, text

        engine = create_engine(url, isolation_level="AUTOCOMMIT")

        def create() -> str:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            with engine.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            return str(engine.url.set(database=name).render_as_string(hide_password=False))

        yield create
        return
    from tests.servers import postgres_server

    with postgres_server() as server:
        yield server.create_database


@contextlib.contextmanager
def dask_processes(workers: int) -> Iterator[str]:
    """A scheduler and W worker processes started as the README's *Large archives* starts them, here: the address.
    The recording process then holds only the Dask client, as it does in front of a remote cluster."""
    import socket
    import subprocess

    from distributed import Client

    from tagger.cluster.dispatch import LOCAL_SCHEDULER

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value) for key, value in LOCAL_SCHEDULER.items()
    }
    bin_dir = Path(sys.executable).parent
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
        **quiet,  # type: ignore[call-overload]
    )
    worker = subprocess.Popen(
        [bin_dir / "dask", "worker", address, "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"],
        **quiet,  # type: ignore[call-overload]
    )
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(60)


class Timed:
    """Wall time spent in the recorder's own steps (planning, storing and tagging) during one scan, and apart, in the
    tag writes (temp copy, fsync, rename, and the transaction marking the write applied)."""

    def __init__(self, scanner: Scanner) -> None:
        self.seconds = self.write_seconds = self.plan_cpu_seconds = 0.0
        self.writes = 0
        library = scanner.library
        for owner, name in ((scanner, "plan"), (library, "record"), (library, "record_failure")):
            setattr(owner, name, self._wrap(getattr(owner, name), name == "plan"))
        apply_write = library._apply_write

        def timed_write(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return apply_write(*args)
            finally:
                self.write_seconds += time.perf_counter() - start
                self.writes += 1

        library._apply_write = timed_write  # type: ignore[method-assign,assignment]

    def _wrap(self, function: Callable[..., Any], plan: bool) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                if plan:
                    self.plan_cpu_seconds += time.thread_time() - cpu

        return timed


def recording_cpu(scanner: Scanner) -> float:
    """CPU seconds the scanner's recording processes have used so far."""
    import psutil  # a dependency of distributed

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in scanner.recording_pids())


def timed_scan(scanner: Scanner, folder: Path) -> dict[str, float]:
    timed = Timed(scanner)
    cpu, wall, recording = time.process_time(), time.perf_counter(), recording_cpu(scanner)
    outcomes = [report.outcome for report in scanner.scan([folder])]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    recording = recording_cpu(scanner) - recording
    if set(outcomes) - {Outcome.TAGGED, Outcome.UNCHANGED, Outcome.KEPT, Outcome.LOW_CONFIDENCE}:
        raise SystemExit(f"scan of {folder}: not every track was recorded: {outcomes}")
    tracks = len(outcomes)
    return {"tracks": tracks, "wall_s": wall, "per_second": tracks / wall, "recorder_ms": 1000 * timed.seconds / tracks,
            "recorder_cpu_ms": 1000 * cpu / tracks, "recording_processes_cpu_ms": 1000 * recording / tracks,
            "plan_cpu_ms": 1000 * timed.plan_cpu_seconds / tracks,
            "written": timed.writes,
            "write_ms": 1000 * timed.write_seconds / max(1, timed.writes)}  # fmt: skip


def analysis_cpu(card: ModelCard, files: list[Path], max_windows: int | None) -> float:
    """CPU seconds per track of decode -> features -> model, in this process with the model loaded (best of 2)."""
    classifier = Classifier(card, threads=1)
    analyse_track(files[0], classifier, max_windows)  # warm-up
    best = []
    for path in files:
        runs = []
        for _ in range(2):
            start = time.process_time()
            analyse_track(path, classifier, max_windows)
            runs.append(time.process_time() - start)
        best.append(min(runs))
    return statistics.mean(best)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TAGGER_CONFIG", os.devnull)
    card = load_card(args.model)
    with contextlib.ExitStack() as stack:
        temp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tagger-bench-cluster-"))
        new_db = stack.enter_context(database_server(args.db))
        address = f"local:{args.workers}" if args.local_cluster else stack.enter_context(dask_processes(args.workers))
        work = Path(temp)
        tracks = build_tracks(args.corpus or work / "corpus", args.tracks)
        runs: dict[str, list[dict[str, float]]] = {"pool": [], "cluster": []}
        backends = {
            "pool": lambda library: Scanner(
                library,
                workers=args.workers,
                max_windows=args.max_windows,
                recorders=args.recorders,
                recording_processes=args.recording_processes,
            ),
            "cluster": lambda library: Scanner(
                library,
                max_windows=args.max_windows,
                backend=open_cluster(address, card, library.db.url),
                recorders=args.recorders,
                recording_processes=args.recording_processes,
            ),
        }
        scanners: dict[str, Scanner] = {}
        try:
            for name, make in backends.items():  # start both, then warm each up (spawn, model load: not timed)
                # Every track written, as on a first scan (the synthetic tracks are mostly below the thresholds).
                options = TagOptions(tag_low_confidence=True, vocabulary=args.vocabulary)
                scanners[name] = make(Library(Database(new_db()), card, options))
                warm = copy_files(tracks[: args.workers], work / f"warm-{name}")
                timed_scan(scanners[name], warm)
            for repeat in range(args.repeat):
                for name in ("pool", "cluster") if repeat % 2 == 0 else ("cluster", "pool"):
                    # The same database (its engine's statement cache warm), new files: every one is new to it.
                    folder = copy_files(tracks, work / f"{name}-{repeat}", args.copies)
                    runs[name].append(timed_scan(scanners[name], folder))
                    console.log(f"{name} run {repeat + 1}: {runs[name][-1]}")
        finally:
            for scanner in scanners.values():
                scanner.close()
        analysis_s = analysis_cpu(card, tracks, args.max_windows)

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    pool_tps, cluster_tps = median("pool", "per_second"), median("cluster", "per_second")
    overhead = pool_tps / cluster_tps - 1
    recorder_s = median("cluster", "recorder_ms") / 1000
    recorder_cpu_s = median("cluster", "recorder_cpu_ms") / 1000
    recording_cpu_s = median("cluster", "recording_processes_cpu_ms") / 1000
    # With recording processes, the scan process plans (all files, before the first analysis: its wall time is not
    # overlapped), then holds the Dask client and hands the analyses over (the recording processes, as many as the
    # machine has cores for, store and write): plan wall + the rest of its CPU per track is what one scan can do.
    # Without, its records overlap (--recorders at a time): it needs its wall time per track divided among them, and
    # its CPU per track (one core: the records share one interpreter), whichever is more.
    plan_cpu_s = median("cluster", "plan_cpu_ms") / 1000
    bottleneck = (
        recorder_s + recorder_cpu_s - plan_cpu_s
        if args.recording_processes
        else max(recorder_s / args.recorders, recorder_cpu_s)
    )
    workers_fed = analysis_s / bottleneck
    recording_processes = math.ceil(RECORDER_WORKERS_MIN / workers_fed)
    # 50 workers' tracks per second times the recording processes' CPU per track: their cores on the scan's machine.
    recording_cores = RECORDER_WORKERS_MIN / analysis_s * recording_cpu_s
    figures = {
        "model": card.model_id, "max_windows": args.max_windows, "workers": args.workers,
        "tracks_per_scan": args.tracks * args.copies, "repeat": args.repeat, "load_average": os.getloadavg(),
        "recorders": args.recorders, "recording_processes": args.recording_processes,
        "scans_for_50_workers": recording_processes, "recording_cores_for_50_workers": recording_cores,
        "recording_processes_cpu_ms_per_track": 1000 * recording_cpu_s,
        "pool_tracks_per_s": pool_tps, "cluster_tracks_per_s": cluster_tps, "cluster_overhead": overhead,
        "recorder_ms_per_track": 1000 * recorder_s, "recorder_cpu_ms_per_track": 1000 * recorder_cpu_s,
        "pool_recorder_cpu_ms_per_track": median("pool", "recorder_cpu_ms"),
        "analysis_cpu_s_per_track": analysis_s, "worker_processes_one_recorder_feeds": workers_fed,
        "machines_of_cores": args.cores_per_machine,
        "tracks_per_s_per_machine": args.cores_per_machine / analysis_s, "recorder_max_tracks_per_s": 1 / bottleneck,
        "runs": runs,
    }  # fmt: skip
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        f"cluster path on one machine: {card.model_id}, max_windows {args.max_windows or card.max_windows}, "
        f"{args.workers} workers, "
        f"{args.tracks * args.copies} x 4-min tracks per scan, {args.repeat} scans each (medians); load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
        f"  local pool ({args.workers} processes)        {pool_tps:6.2f} tracks/s",
        f"  cluster ({'LocalCluster' if args.local_cluster else 'dask scheduler + worker'}, {args.workers} workers)"
        f"   {cluster_tps:6.2f} tracks/s",
        f"  cluster overhead                   {100 * overhead:+6.1f} %    target <= {100 * OVERHEAD_MAX:.0f} %  "
        f"{verdict[overhead <= OVERHEAD_MAX]}",
        *(
            [
                f"  scan process per track (plan, wall)                    {1000 * recorder_s:6.1f} ms   "
                f"({1000 * plan_cpu_s:.1f} ms CPU)",
                f"  scan process CPU per track (cluster; pool: {median('pool', 'recorder_cpu_ms'):.1f} ms) "
                f"{1000 * recorder_cpu_s:6.1f} ms   (Dask client, plan, hand-over)",
                f"  recording processes ({args.recording_processes} x {args.recorders} at a time) CPU per track "
                f"{1000 * recording_cpu_s:6.1f} ms   (store + tag write)",
            ]
            if args.recording_processes
            else [
                f"  recorder per track (plan + store + tag write, wall, {args.recorders} at a time) "
                f"{1000 * recorder_s:6.1f} ms   of which a tag write {median('cluster', 'write_ms'):.0f} ms each, on "
                f"{median('cluster', 'written'):.0f} of {args.tracks * args.copies} tracks",
                f"  recorder process CPU per track (cluster; pool: {median('pool', 'recorder_cpu_ms'):.1f} ms) "
                f"{1000 * recorder_cpu_s:6.1f} ms",
            ]
        ),
        f"  analysis CPU per track (decode + features + model)    {1000 * analysis_s:6.0f} ms",
        f"  paper estimate: one scan process feeds {workers_fed:.0f} worker processes (A/S = {analysis_s:.3f} s"
        f" / {bottleneck:.4f} s)   target >= {RECORDER_WORKERS_MIN}  {verdict[workers_fed >= RECORDER_WORKERS_MIN]}",
        *(
            [
                f"    and its recording processes need {recording_cores:.1f} cores for {RECORDER_WORKERS_MIN} workers "
                f"({RECORDER_WORKERS_MIN / analysis_s:.0f} tracks/s x {1000 * recording_cpu_s:.1f} ms)"
            ]
            if args.recording_processes
            else [
                f"    {RECORDER_WORKERS_MIN} worker processes need {recording_processes} scans of parts of the archive "
                "at once, or --recording-processes (README: Large archives)"
            ]
        ),
        f"    = {workers_fed / args.cores_per_machine:.1f} machines of {args.cores_per_machine} cores "
        f"({args.cores_per_machine / analysis_s:.0f} tracks/s each) before the scan process "
        f"({1 / bottleneck:.0f} tracks/s) is the bottleneck",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if overhead <= OVERHEAD_MAX and workers_fed >= RECORDER_WORKERS_MIN else 1


if __name__ == "__main__":
    raise SystemExit(main())
