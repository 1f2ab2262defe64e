"""A scan's summary: how many tracks ended how, and per role (genre, mood) what was written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tagger.track import Outcome, TrackReport


@dataclass
class ScanSummary:
    counts: Counter[str] = field(default_factory=Counter)  # per track: the genre's outcome (or the track's)
    mood_counts: Counter[str] = field(default_factory=Counter)  # per track whose mood was decided: the mood's
    failures: list[tuple[Path, str]] = field(default_factory=list)
    changes: list[TrackReport] = field(default_factory=list)  # a role tagged / would-tag, for --dry-run listings
    recovered: int = 0

    def add(self, report: TrackReport) -> None:
        self.counts[report.outcome.value] += 1
        if report.mood is not None:
            self.mood_counts[report.mood.outcome.value] += 1
        if report.outcome is Outcome.FAILED:
            self.failures.append((report.path, report.reason))
        if report.changed:
            self.changes.append(report)

    def to_dict(self) -> dict[str, object]:
        changes = [
            {"path": str(c.path), "existing": c.existing, "proposed": c.proposed}
            | ({"mood": c.mood.to_dict()} if c.mood is not None else {})
            for c in self.changes
        ]
        failures = [{"path": str(p), "reason": r} for p, r in self.failures]
        return {"counts": dict(self.counts), "mood_counts": dict(self.mood_counts), "recovered": self.recovered,
                "failures": failures, "changes": changes}  # fmt: skip
