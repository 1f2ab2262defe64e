"""The recorder's own cost per track: ``Library.record`` timed on analyses made beforehand (no decoding timed).

    .venv/bin/python bench/recorder.py                      # SQLite and a throw-away PostgreSQL, both cases
    .venv/bin/python bench/recorder.py --profile out.prof   # plus a cProfile of the timed records

Each source track is analysed once; the timed records are of fresh copies, every one new to the database, so
each record does what a first scan does. Two cases: every track written (``tag_low_confidence``, the gtzan head),
and nothing written (the card's default head abstains on the synthetic tracks, moods off). Each case is timed with
1 recorder (one track at a time) and with N at a time (``--recorders``, threads of this process as a scan runs them,
:func:`tagger.recorders.recorded_in_order`): wall ms per track is what one recording process needs per track. Then
``--processes`` recording processes at once on the same database (scans of parts of an archive), each on its own
copies: their tracks per second against one process's (each file's lock keeps them apart, not one writer lock).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import database_server
from bench.corpus import build_tracks, copy_files
from tagger.model import Classifier, load_card
from tagger.pipeline import TrackAnalysis, analyse_track
from tagger.record import Library, TagOptions
from tagger.recorders import recorded_in_order
from tagger.store import Database
from tagger.track import FileState, Outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder to reuse (its tracks/ are kept); default: temp")
    parser.add_argument("--tracks", type=int, default=4, help="distinct 4-minute tracks (MP3 and FLAC)")
    parser.add_argument("--copies", type=int, default=8, help="copies of each recorded per case")
    parser.add_argument("--max-windows", type=int, default=4)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--recorders", type=int, nargs="+", default=[1, 4, 8, 16], help="tracks recorded at a time")
    parser.add_argument(
        "--processes", type=int, default=2, help="then this many recording processes at once, 4 at a time each"
    )
    parser.add_argument("--profile", type=Path, help="cProfile of the timed records, one file per database and case")
    return parser.parse_args(argv)


def timed_records(
    library: Library, analyses: list[TrackAnalysis], folder: Path, recorders: int, profile: Path | None
) -> dict[str, float]:
    """Record a copy of each analysed track per file in ``folder``, ``recorders`` at a time; wall and CPU ms per
    track (CPU: this process's, every thread's)."""
    by_name = {analysis.path.name: analysis for analysis in analyses}
    todo = []
    for path in sorted(folder.iterdir()):
        source = by_name[path.stem.rsplit("-", 1)[0] + path.suffix]
        todo.append((dataclasses.replace(source, path=path), FileState.of(path)))
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    jobs = (partial(library.record, analysis, folder, state) for analysis, state in todo)
    outcomes = [report.outcome for report in recorded_in_order(jobs, recorders)]
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"tracks": len(todo), "wall_ms": 1000 * wall / len(todo), "cpu_ms": 1000 * cpu / len(todo),
            "written": outcomes.count(Outcome.TAGGED), "failed": outcomes.count(Outcome.FAILED)}  # fmt: skip


def recording_process(
    url: str, options: TagOptions, analyses: list[TrackAnalysis], folder: Path, recorders: int, start_at: float
) -> dict[str, float]:
    """One recording process of several on the same database (as scans of parts of an archive at once)."""
    os.environ.setdefault("TAGGER_CONFIG", os.devnull)
    library = Library(Database(url), load_card(None), options)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    figures = timed_records(library, analyses, folder, recorders, None)
    library.db.engine.dispose()
    return figures | {"started": started, "ended": time.time()}


def several_processes(
    url: str, options: TagOptions, analyses: list[TrackAnalysis], folders: list[Path], recorders: int
) -> dict[str, float]:
    """``len(folders)`` recording processes at once, each on its own folder: wall ms per track of them all."""
    start_at = time.time() + 10  # all have imported and opened the database by then
    with multiprocessing.get_context("spawn").Pool(len(folders)) as pool:
        runs = pool.starmap(recording_process, [(url, options, analyses, f, recorders, start_at) for f in folders])
    tracks = sum(run["tracks"] for run in runs)
    wall = max(run["ended"] for run in runs) - min(run["started"] for run in runs)
    return {"tracks": tracks, "wall_ms": 1000 * wall / tracks, "written": sum(run["written"] for run in runs),
            "failed": sum(run["failed"] for run in runs)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TAGGER_CONFIG", os.devnull)
    card = load_card(None)
    classifier = Classifier(card, threads=1)
    with tempfile.TemporaryDirectory(prefix="tagger-bench-recorder-") as temp:
        work = Path(temp)
        tracks = build_tracks(args.corpus or work / "corpus", args.tracks)
        analyses = [analyse_track(path, classifier, args.max_windows) for path in tracks]
        cases = {
            "written": TagOptions(tag_low_confidence=True, vocabulary="gtzan", moods=False),
            "nothing written": TagOptions(moods=False),
        }
        kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        with database_server(None) if "postgresql" in kinds else contextlib.nullcontext(_no_server) as new_db:
            for kind in kinds:
                for case, options in cases.items():
                    url = f"sqlite:///{work}/{kind}-{case[0]}.db" if kind == "sqlite" else new_db()
                    library = Library(Database(url), card, options)
                    library.record(analyses[0], tracks[0].parent, FileState.of(tracks[0]))  # warm the engine
                    single = None
                    for recorders in args.recorders:
                        folder = copy_files(tracks, work / f"{kind}-{case[0]}-{recorders}", args.copies)
                        profile = args.profile and args.profile.with_suffix(
                            f".{kind}.{case.split()[0]}.{recorders}.prof"
                        )
                        figures = timed_records(library, analyses, folder, recorders, profile)
                        single = single or figures["wall_ms"]
                        print(f"{kind:10} {case:16} {recorders:2} at a time {figures['wall_ms']:6.1f} ms wall "
                              f"({single / figures['wall_ms']:4.1f}x)  {figures['cpu_ms']:6.1f} ms CPU per track "
                              f"({figures['tracks']} tracks, {figures['written']} written, "
                              f"{figures['failed']} failed)")  # fmt: skip
                    library.db.engine.dispose()
                    if args.processes > 1:
                        one = timed_records(
                            Library(Database(url), card, options), analyses,
                            copy_files(tracks, work / f"{kind}-{case[0]}-one", args.copies), 4, None,
                        )  # fmt: skip
                        folders = [
                            copy_files(tracks, work / f"{kind}-{case[0]}-p{i}", args.copies)
                            for i in range(args.processes)
                        ]
                        many = several_processes(url, options, analyses, folders, 4)
                        speedup = one["wall_ms"] / many["wall_ms"]
                        print(f"{kind:10} {case:16} {args.processes} processes, 4 at a time each: "
                              f"{many['wall_ms']:6.1f} ms wall per track, {speedup:4.1f}x the tracks/s of one process "
                              f"({one['wall_ms']:.1f} ms) ({many['tracks']} tracks, {many['written']} written, "
                              f"{many['failed']} failed)")  # fmt: skip
    return 0


def _no_server() -> str:
    raise AssertionError("no PostgreSQL server was started")


if __name__ == "__main__":
    raise SystemExit(main())
