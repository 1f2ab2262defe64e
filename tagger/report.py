"""A summary of the library's genres from the database (no file is opened)."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tagger.genres import GenreRules
from tagger.store import Database, Result, Track, TrackStatus
from tagger.store.queries import is_latest_result


@dataclass
class GenreRow:
    genre: str
    tracks: int
    share: float  # of classified tracks
    mean_confidence: float


@dataclass
class LibraryReport:
    tracks: int = 0  # present in the library (not gone)
    classified: int = 0
    failed: int = 0  # could not be classified: len(failures)
    tag_failed: int = 0  # classified, but the genre tags could not be read or written: len(tag_failures)
    gone: int = 0
    vocabulary: str | None = None
    genres: list[GenreRow] = field(default_factory=list)
    low_confidence: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    tag_failures: list[dict[str, str]] = field(default_factory=list)
    folders: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_csv(self) -> str:
        """One row per (folder, genre), then the library-wide rows with folder ``*``."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["folder", "genre", "tracks", "share", "mean_confidence"])
        for row in self.genres:
            writer.writerow(["*", row.genre, row.tracks, f"{row.share:.4f}", f"{row.mean_confidence:.4f}"])
        for folder, counts in self.folders.items():
            for genre, count in counts.items():
                writer.writerow([folder, genre, count, "", ""])
        return out.getvalue()


def _top_folder(path: str, root: str | None) -> str:
    try:
        parts = Path(path).relative_to(root).parts if root else Path(path).parts[-2:]
    except ValueError:
        parts = Path(path).parts[-2:]
    return parts[0] if len(parts) > 1 else "."


def build_report(
    db: Database, vocabulary: str | None = None, low_confidence_below: float = 0.5, rules: GenreRules | None = None
) -> LibraryReport:
    """Genre counts from the latest results; ``rules`` give them their canonical names (results stored
    before a ``[genres.map]`` entry was added are counted under the new name)."""
    rules = rules or GenreRules()
    report = LibraryReport(vocabulary=vocabulary)
    with db.session() as session:
        latest = is_latest_result(vocabulary=vocabulary or None)
        results = {r.track_id: r for r in session.scalars(select(Result).where(latest))}
        confidence_sum: dict[str, float] = defaultdict(float)
        counts: Counter[str] = Counter()
        folders: dict[str, Counter[str]] = defaultdict(Counter)
        for track in session.scalars(select(Track).order_by(Track.path)):
            if track.status == TrackStatus.GONE:
                report.gone += 1
                continue
            report.tracks += 1
            if track.status == TrackStatus.FAILED:
                report.failed += 1
                report.failures.append({"path": track.path, "reason": track.error or ""})
                continue
            if track.error:  # classified, but the tags could not be read or written
                report.tag_failed += 1
                report.tag_failures.append({"path": track.path, "reason": track.error})
            result = results.get(track.id)
            if result is None or not result.genres:
                continue
            report.classified += 1
            top = {**result.genres[0], "genre": rules.canonical(result.genres[0]["genre"])}
            counts[top["genre"]] += 1
            confidence_sum[top["genre"]] += top["confidence"]
            folders[_top_folder(track.path, track.root)][top["genre"]] += 1
            if top["confidence"] < low_confidence_below:
                report.low_confidence.append(
                    {"path": track.path, "genre": top["genre"], "confidence": top["confidence"]}
                )
    report.genres = [
        GenreRow(genre, n, n / report.classified, confidence_sum[genre] / n) for genre, n in counts.most_common()
    ]
    report.folders = {folder: dict(c.most_common()) for folder, c in sorted(folders.items())}
    return report
