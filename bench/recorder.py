"""The recorder's own cost per track: ``Library.record`` timed on analyses made beforehand (no decoding timed).

    .venv/bin/python bench/recorder.py                      # SQLite and a throw-away PostgreSQL, both cases
    .venv/bin/python bench/recorder.py --profile out.prof   # plus a cProfile of the timed records

Each source track is analysed once; the timed records are of fresh copies, every one new to the database, so
each record does what a first scan does. Two cases: every track written (``tag_low_confidence``, the gtzan head),
and nothing written (the card's default head abstains on the synthetic tracks).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import database_server
from bench.corpus import build_tracks, copy_files
from tagger.model import Classifier, load_card
from tagger.pipeline import TrackAnalysis, analyse_track
from tagger.record import Library, TagOptions
from tagger.store import Database
from tagger.track import FileState, Outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder to reuse (its tracks/ are kept); default: temp")
    parser.add_argument("--tracks", type=int, default=4, help="distinct 4-minute tracks (MP3 and FLAC)")
    parser.add_argument("--copies", type=int, default=8, help="copies of each recorded per case")
    parser.add_argument("--max-windows", type=int, default=4)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--profile", type=Path, help="cProfile of the timed records, one file per database and case")
    return parser.parse_args(argv)


def timed_records(
    library: Library, analyses: list[TrackAnalysis], folder: Path, profile: Path | None
) -> dict[str, float]:
    """Record a copy of each analysed track per file in ``folder``; wall and CPU ms per track."""
    by_name = {analysis.path.name: analysis for analysis in analyses}
    todo = []
    for path in sorted(folder.iterdir()):
        source = by_name[path.stem.rsplit("-", 1)[0] + path.suffix]
        todo.append((dataclasses.replace(source, path=path), FileState.of(path)))
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    outcomes = [library.record(analysis, folder, state).outcome for analysis, state in todo]
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"tracks": len(todo), "wall_ms": 1000 * wall / len(todo), "cpu_ms": 1000 * cpu / len(todo),
            "written": outcomes.count(Outcome.TAGGED), "failed": outcomes.count(Outcome.FAILED)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TAGGER_CONFIG", os.devnull)
    card = load_card(None)
    classifier = Classifier(card, threads=1)
    with tempfile.TemporaryDirectory(prefix="tagger-bench-recorder-") as temp:
        work = Path(temp)
        tracks = build_tracks(args.corpus or work / "corpus", args.tracks)
        analyses = [analyse_track(path, classifier, args.max_windows) for path in tracks]
        cases = {"written": TagOptions(tag_low_confidence=True, vocabulary="gtzan"), "nothing written": TagOptions()}
        kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        with database_server(None) if "postgresql" in kinds else contextlib.nullcontext(_no_server) as new_db:
            for kind in kinds:
                for case, options in cases.items():
                    url = f"sqlite:///{work}/{kind}-{case[0]}.db" if kind == "sqlite" else new_db()
                    library = Library(Database(url), card, options)
                    library.record(analyses[0], tracks[0].parent, FileState.of(tracks[0]))  # warm the engine
                    folder = copy_files(tracks, work / f"{kind}-{case[0]}", args.copies)
                    profile = args.profile and args.profile.with_suffix(f".{kind}.{case.split()[0]}.prof")
                    figures = timed_records(library, analyses, folder, profile)
                    print(f"{kind:10} {case:16} {figures['wall_ms']:6.1f} ms wall  {figures['cpu_ms']:6.1f} ms CPU "
                          f"per track ({figures['tracks']} tracks, {figures['written']} written, "
                          f"{figures['failed']} failed)")  # fmt: skip
                    library.db.engine.dispose()
    return 0


def _no_server() -> str:
    raise AssertionError("no PostgreSQL server was started")


if __name__ == "__main__":
    raise SystemExit(main())
