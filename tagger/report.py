"""A summary of the library's genres and moods from the database (no file is opened): what the files now
contain, after the policy, and separately what the model proposed."""

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
class MoodRow:
    """A mood the model proposed: the one a scan would write (``results.moods["chosen"]``) per track."""

    mood: str
    tracks: int
    share: float  # of the tracks with moods computed (``moods_uncertain`` included)
    mean_confidence: float


@dataclass
class FileMoodRow:
    """A mood the files now carry (the first value of their MOOD field, after the policy)."""

    mood: str
    tracks: int
    share: float  # of the tracks whose MOOD field is known (``no_mood`` included)
    ours: int  # of them, how many carry it because this tool wrote it


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
    no_mood: int = 0  # MOOD field known and empty
    moods_uncertain: int = 0  # moods computed, none proposed (the mood head abstained)
    moods: list[FileMoodRow] = field(default_factory=list)  # what the files' MOOD fields now say
    proposed_moods: list[MoodRow] = field(default_factory=list)  # what the model proposed

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
        writes: dict[str, dict[int, TagWrite]] = {"genre": {}, "mood": {}}
        for w in session.scalars(  # the last write of each role that reached the file (applied, or then restored)
            select(TagWrite)
            .where(TagWrite.status.in_([TagWriteStatus.APPLIED, TagWriteStatus.RESTORED]))
            .order_by(TagWrite.id)
        ):
            writes.setdefault(w.role, {})[w.track_id] = w
        moods = _MoodCounts()
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
            moods.add_file(track.file_moods, writes["mood"].get(track.id))
            write = writes["genre"].get(track.id)
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
            if result is not None and result.moods is not None:
                moods.add_result(result.moods)
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
    moods.into(report)
    return report


class _MoodCounts:
    """The mood half of the report, counted as the genres are (by the first value; ours when our last applied
    mood write is what the field holds), without genre rules (those name genres)."""

    def __init__(self) -> None:
        self.in_files: Counter[str] = Counter()
        self.ours: Counter[str] = Counter()
        self.proposed: Counter[str] = Counter()
        self.confidence: dict[str, float] = defaultdict(float)
        self.no_mood = self.uncertain = 0

    def add_file(self, now: list[str] | None, write: TagWrite | None) -> None:
        if now is None:  # not known: a row from before 0005, or tags never read
            return
        if not now:
            self.no_mood += 1
            return
        self.in_files[now[0]] += 1
        if write is not None and write.status == TagWriteStatus.APPLIED and write.new == now:
            self.ours[now[0]] += 1

    def add_result(self, moods: dict[str, Any]) -> None:
        chosen = moods.get("chosen") or []
        if not chosen:
            self.uncertain += 1
            return
        self.proposed[chosen[0]] += 1
        ranked = {row["mood"]: float(row["confidence"]) for row in moods.get("ranked", [])}
        self.confidence[chosen[0]] += ranked.get(chosen[0], 0.0)

    def into(self, report: LibraryReport) -> None:
        report.no_mood, report.moods_uncertain = self.no_mood, self.uncertain
        known = self.in_files.total() + self.no_mood
        report.moods = [FileMoodRow(m, n, n / known, self.ours[m]) for m, n in self.in_files.most_common()]
        computed = self.proposed.total() + self.uncertain
        report.proposed_moods = [
            MoodRow(m, n, n / computed, self.confidence[m] / n) for m, n in self.proposed.most_common()
        ]
