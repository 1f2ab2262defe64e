"""A summary of the library's genres from the database (no file is opened): what the files now contain,
after the policy, and separately what the model proposed."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tagger.genres import GenreRules
from tagger.store import Database, Result, TagWrite, TagWriteStatus, Track, TrackStatus
from tagger.store.queries import is_latest_result

HISTOGRAM_BINS = 10  # confidence histogram: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]


@dataclass
class GenreRow:
    """A genre the model proposed (its top genre per classified track)."""

    genre: str
    tracks: int
    share: float  # of classified tracks
    mean_confidence: float


@dataclass
class FileGenreRow:
    """A genre the files now carry (the first value of their genre field, after the policy)."""

    genre: str
    tracks: int
    share: float  # of the tracks whose genre field is known (``no_genre`` included)
    ours: int  # of them, how many carry it because this tool wrote it (the rest: the owner's)


@dataclass
class LibraryReport:
    tracks: int = 0  # present in the library (not gone)
    classified: int = 0
    failed: int = 0  # could not be classified: len(failures)
    tag_failed: int = 0  # classified, but the genre tags could not be read or written: len(tag_failures)
    gone: int = 0
    no_genre: int = 0  # genre field known and empty
    vocabulary: str | None = None
    genres: list[FileGenreRow] = field(default_factory=list)  # what the files now contain
    proposed: list[GenreRow] = field(default_factory=list)  # what the model proposed
    confidence_histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)  # model's top genre
    low_confidence: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    tag_failures: list[dict[str, str]] = field(default_factory=list)
    folders: dict[str, dict[str, int]] = field(default_factory=dict)  # top folder -> genre in the files -> tracks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_csv(self) -> str:
        """One row per genre in the files (kind ``file``) and proposed by the model (``model``), library-wide
        (folder ``*``), then per (folder, genre in the files)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["kind", "folder", "genre", "tracks", "share", "mean_confidence"])
        for file_row in self.genres:
            writer.writerow(["file", "*", file_row.genre, file_row.tracks, f"{file_row.share:.4f}", ""])
        for row in self.proposed:
            writer.writerow(["model", "*", row.genre, row.tracks, f"{row.share:.4f}", f"{row.mean_confidence:.4f}"])
        for folder, counts in self.folders.items():
            for genre, count in counts.items():
                writer.writerow(["file", folder, genre, count, "", ""])
        return out.getvalue()


def _top_folder(path: str, root: str | None) -> str:
    try:
        parts = Path(path).relative_to(root).parts if root else Path(path).parts[-2:]
    except ValueError:
        parts = Path(path).parts[-2:]
    return parts[0] if len(parts) > 1 else "."


def _file_genres(track: Track, last_write: TagWrite | None) -> list[str] | None:
    """The track's genre field after the policy; for a row from before ``file_genres`` was recorded, our
    last write (or the value a restore put back), else the owner's genres seen at the last scan."""
    if track.file_genres is not None:
        return track.file_genres
    if last_write is not None:
        return last_write.new if last_write.status == TagWriteStatus.APPLIED else last_write.previous
    return track.user_genres if track.status == TrackStatus.DONE else None


def build_report(
    db: Database, vocabulary: str | None = None, low_confidence_below: float = 0.5, rules: GenreRules | None = None
) -> LibraryReport:
    """What the files now contain and what the model proposed, from the database; ``rules`` give both their
    canonical names (results stored before a ``[genres.map]`` entry was added are counted under the new name)."""
    rules = rules or GenreRules()
    report = LibraryReport(vocabulary=vocabulary)
    with db.session() as session:
        latest = is_latest_result(vocabulary=vocabulary or None)
        results = {r.track_id: r for r in session.scalars(select(Result).where(latest))}
        writes = {  # the last write that reached the file (applied, or applied then restored), per track
            w.track_id: w
            for w in session.scalars(
                select(TagWrite)
                .where(TagWrite.status.in_([TagWriteStatus.APPLIED, TagWriteStatus.RESTORED]))
                .order_by(TagWrite.id)
            )
        }
        confidence_sum: dict[str, float] = defaultdict(float)
        proposed: Counter[str] = Counter()
        in_files: Counter[str] = Counter()
        ours: Counter[str] = Counter()
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
            write = writes.get(track.id)
            now = _file_genres(track, write)
            if now is not None:
                if not now:
                    report.no_genre += 1
                else:
                    genre = rules.canonical(now[0])
                    in_files[genre] += 1
                    folders[_top_folder(track.path, track.root)][genre] += 1
                    if write is not None and write.status == TagWriteStatus.APPLIED and write.new == now:
                        ours[genre] += 1
            result = results.get(track.id)
            if result is None or not result.genres:
                continue
            report.classified += 1
            top = {**result.genres[0], "genre": rules.canonical(result.genres[0]["genre"])}
            proposed[top["genre"]] += 1
            confidence_sum[top["genre"]] += top["confidence"]
            report.confidence_histogram[min(int(top["confidence"] * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
            if top["confidence"] < low_confidence_below:
                report.low_confidence.append(
                    {"path": track.path, "genre": top["genre"], "confidence": top["confidence"]}
                )
    known = in_files.total() + report.no_genre
    report.genres = [FileGenreRow(genre, n, n / known, ours[genre]) for genre, n in in_files.most_common()]
    report.proposed = [
        GenreRow(genre, n, n / report.classified, confidence_sum[genre] / n) for genre, n in proposed.most_common()
    ]
    report.folders = {folder: dict(c.most_common()) for folder, c in sorted(folders.items())}
    return report
