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
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: tagger, tagger.train and bench from this checkout
    sys.path.insert(0, str(REPO))

from bench.baselines import bench_model, bench_naive, bench_windows  # noqa: E402
from bench.children import CHILDREN  # noqa: E402
from bench.corpus import Corpus, build_corpus  # noqa: E402
from bench.figures import (  # noqa: E402
    Bench,
    bench_cold_start,
    bench_daemon,
    bench_decode,
    bench_default_head,
    bench_memory,
    bench_moods,
    bench_rescan,
    bench_scans,
)
from bench.measure import console  # noqa: E402

FALLBACK_MODEL = REPO / "tests" / "fixtures" / "models" / "tiny.json"


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
        bench_default_head(bench, corpus)
        bench_moods(bench, corpus)
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
