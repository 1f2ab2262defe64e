"""How fast `tagger similar` searches a large library: N synthetic stored embeddings in a real SQLite file.

    .venv/bin/python bench/similar.py                  # 100k tracks, 200-d (musicnn), 200 queries
    .venv/bin/python bench/similar.py --tracks 20000 --json out.json

Figures: the time to build the database (not a target), to load the index from it (one query, one
buffer; median of 3 loads in this process), and per query (median and 95th percentile of the
queries, each a stored track's own vector): top 30 plain, and top 30 with one track per "album"
(the full sort path; the album key here is the path's folder, so no file is read). Target: a query
< 1 s. The database is the real schema (Alembic), rows written through SQLAlchemy Core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagger.similar import EmbeddingIndex
from tagger.store import Database, Result, Track, TrackStatus

MODEL_ID = "bench@1"
TARGET_QUERY_S = 1.0


def build_database(path: Path, tracks: int, dims: int = 200, seed: int = 0, batch: int = 5000) -> Database:
    """``tracks`` classified tracks in folders of 10, each with one result holding a random float16 embedding
    (clustered a little, as real ones are: 50 centres plus noise)."""
    db = Database(path)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dims)).astype(np.float32)
    with db.engine.begin() as connection:
        for start in range(0, tracks, batch):
            count = min(batch, tracks - start)
            ids = range(start + 1, start + count + 1)
            connection.execute(
                insert(Track),
                [
                    {
                        "id": i,
                        "path": f"/music/{i // 10:06d}/track-{i:07d}.flac",
                        "root": "/music",
                        "status": TrackStatus.DONE,
                        "duration": 240.0,
                    }
                    for i in ids
                ],
            )
            vectors = centres[rng.integers(0, len(centres), count)] + rng.normal(size=(count, dims)).astype(np.float32)
            connection.execute(
                insert(Result),
                [
                    {
                        "track_id": i,
                        "model_id": MODEL_ID,
                        "vocabulary": "genres",
                        "genres": [],
                        "chosen": [],
                        "windows": {},
                        "embedding": vector.astype(np.float16).tobytes(),
                    }
                    for i, vector in zip(ids, vectors, strict=True)
                ],
            )
    return db


def measure(tracks: int, dims: int, queries: int, folder: Path) -> dict[str, float]:
    started = time.perf_counter()
    db = build_database(folder / "bench.db", tracks, dims)
    built = time.perf_counter() - started
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        index = EmbeddingIndex.load(db, MODEL_ID)
        loads.append(time.perf_counter() - started)
    assert len(index) == tracks
    rng = np.random.default_rng(1)
    plain, one_per_album = [], []
    for row in rng.integers(0, tracks, queries):
        path = index.paths[row]
        vector = index.vectors[row]
        started = time.perf_counter()
        found = index.nearest(vector, 30, exclude={path})
        plain.append(time.perf_counter() - started)
        assert len(found) == 30
        started = time.perf_counter()
        index.nearest(vector, 30, exclude={path}, key=os.path.dirname, taken=[os.path.dirname(path)])
        one_per_album.append(time.perf_counter() - started)
    return {
        "tracks": tracks,
        "dims": dims,
        "database_mb": (folder / "bench.db").stat().st_size / 1e6,
        "build_s": built,
        "load_s": statistics.median(loads),
        "query_s": statistics.median(plain),
        "query_p95_s": float(np.percentile(plain, 95)),
        "query_one_per_album_s": statistics.median(one_per_album),
        "query_one_per_album_p95_s": float(np.percentile(one_per_album, 95)),
        "index_mb": index.vectors.nbytes / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", type=Path, help="Write the figures here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(args.tracks, args.dims, args.queries, Path(folder))
    load1, load5, load15 = os.getloadavg()
    print(f"{figures['tracks']} stored {figures['dims']}-d embeddings, SQLite {figures['database_mb']:.0f} MB")
    print(f"  build (not timed against a target)  {figures['build_s']:8.2f} s")
    print(f"  load the index (median of 3)        {figures['load_s']:8.3f} s   ({figures['index_mb']:.0f} MB float32)")
    for name, key in (("query, top 30", "query_s"), ("query, top 30 one per album", "query_one_per_album_s")):
        ok = "PASS" if figures[key] < TARGET_QUERY_S else "FAIL"
        p95 = figures[key.removesuffix("_s") + "_p95_s"]
        print(
            f"  {name:<34}  {figures[key] * 1000:8.1f} ms  p95 {p95 * 1000:.1f} ms  target < {TARGET_QUERY_S:g} s  {ok}"
        )
    print(f"  load average {load1:.2f} {load5:.2f} {load15:.2f}, {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    passed = figures["query_s"] < TARGET_QUERY_S and figures["query_one_per_album_s"] < TARGET_QUERY_S
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
