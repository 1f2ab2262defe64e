"""What ``tagger learn`` found (figures per label, the head), as a summary and as the saved JSON card."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tagger.files import write_json_atomically
from tagger.model import Head, HeadRole, ModelCard
from tagger.vocabulary import CARD_KIND, CARD_SCHEMA_VERSION, EmbeddingHead, learned_role


@dataclass
class LabelFigures:
    """One label's cross-validated figures (or why it was refused)."""

    label: str  # the normalised key
    name: str  # the text written into files (the genre or mood as the owner spells it)
    tracks: int
    folders: int
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    f1_spread: float | None = None  # standard deviation of F1 over the folds that hold the label
    threshold: float | None = None
    refused: str = ""  # why it is left out; "" = learned
    groups: int = 0  # CV groups its tracks fall in
    grouping: str = ""  # what those groups are: "album", "artist", "folder" (best first, "+"-joined), "track"
    optimistic: bool = False  # one group only: CV split its tracks one by one, so the figure flatters it
    note: str = ""  # what the figure is about, for the owner

    @property
    def learned(self) -> bool:
        return not self.refused

    def to_dict(self, role: HeadRole) -> dict[str, Any]:
        """The figures with the name under its role (``"genre": "Drone"``, ``"mood": "Calm"``)."""
        data = asdict(self)
        return {"label": data.pop("label"), role: data.pop("name"), **data}


@dataclass
class Learned:
    """What ``tagger learn`` found: figures for every candidate label and the head for the kept ones."""

    name: str
    model_id: str
    tag_field: HeadRole  # the tag field the labels came from: the saved head's role
    min_tracks: int
    f1_floor: float
    labels: list[LabelFigures]  # every label seen, learned and refused
    tracks: int = 0  # tracks with a tag in the field and an embedding: the training set
    untagged: int = 0  # tracks with an embedding and no tag in the field: what the head would tag
    no_embedding: int = 0  # tagged tracks without an embedding from this model (scan them with it)
    folders: int = 0
    groups: int = 0
    grouped_by: dict[str, int] = field(default_factory=dict)  # level -> tagged tracks grouped at it
    folds: int = 0
    dims: int = 0
    head: EmbeddingHead | None = None  # None: no label passed
    roots: list[str] = field(default_factory=list)

    @property
    def learned(self) -> list[LabelFigures]:
        return [figures for figures in self.labels if figures.learned]

    @property
    def refused(self) -> list[LabelFigures]:
        return [figures for figures in self.labels if not figures.learned]

    def as_head(self, name: str | None = None) -> Head:
        kept = self.learned
        return Head(
            name=name or self.name,
            labels=tuple(f.label for f in kept),
            task="multilabel",
            thresholds={f.label: float(f.threshold or 0.5) for f in kept},
            tag_names={f.label: f.name for f in kept},
            role=self.tag_field,
        )

    def grouping_text(self) -> str:
        """``album (40 tracks), folder (8 tracks)``: how the tagged tracks were grouped."""
        return ", ".join(f"{level} ({n} tracks)" for level, n in self.grouped_by.items()) or "nothing"

    def to_summary(self) -> dict[str, Any]:
        """The figures without the weights (``tagger learn --json``)."""
        return {
            "name": self.name,
            "model_id": self.model_id,
            "field": self.tag_field,
            "tracks": self.tracks,
            "untagged": self.untagged,
            "no_embedding": self.no_embedding,
            "folders": self.folders,
            "groups": self.groups,
            "grouped_by": self.grouped_by,
            "folds": self.folds,
            "min_tracks": self.min_tracks,
            "f1_floor": self.f1_floor,
            "learned": [f.to_dict(self.tag_field) for f in self.learned],
            "refused": [f.to_dict(self.tag_field) for f in self.refused],
        }

    def to_card(self, version: int, learned_at: datetime) -> dict[str, Any]:
        """The JSON card saved as ``<name>.json``: labels, figures, model id, and the head's weights."""
        if self.head is None:
            raise ValueError("nothing learned: no label passed")
        return {
            "kind": CARD_KIND,
            "schema_version": CARD_SCHEMA_VERSION,
            "name": self.name,
            "version": version,
            "learned_at": learned_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_id": self.model_id,
            "embedding_dims": self.dims,
            "field": self.tag_field,
            "head": self.as_head().to_dict(),
            "linear": self.head.to_dict(),
            "evaluation": {
                "method": f"{self.folds}-fold CV grouped by {self.grouping_text()}, label-stratified; "
                "thresholds cross-fitted",
                "tracks": self.tracks,
                "folders": self.folders,
                "groups": self.groups,
                "min_tracks": self.min_tracks,
                "f1_floor": self.f1_floor,
                "labels": [f.to_dict(self.tag_field) for f in self.learned],
                "refused": [f.to_dict(self.tag_field) for f in self.refused],
            },
            "sources": {"roots": self.roots, "untagged_tracks": self.untagged},
        }


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")


def check_name(name: str, card: ModelCard, directory: Path | None = None, role: HeadRole = "genre") -> None:
    """A plain file-name-safe word that does not shadow one of the model's heads, nor a vocabulary of
    another role saved in ``directory`` (learning moods as ``mine`` would replace the genres ``mine``)."""
    if not _NAME.match(name):
        raise ValueError(f"vocabulary name {name!r}: use letters, digits, '-' or '_' (at most 48)")
    if name in card.heads:
        raise ValueError(f"vocabulary name {name!r} is one of the model's own vocabularies")
    saved = None if directory is None else learned_role(directory / f"{name}.json")
    if saved is not None and saved != role:
        raise ValueError(
            f"vocabulary name {name!r} is your learned {saved} vocabulary: pick another --vocabulary for {role}s"
        )


def save_vocabulary(learned: Learned, directory: Path, now: datetime | None = None) -> Path:
    """Write ``<name>.json``; the file it replaces is kept as ``<name>.v<its version>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{learned.name}.json"
    version = 1
    if path.exists():
        try:
            previous = int(json.loads(path.read_text()).get("version", 0))
        except (OSError, ValueError, AttributeError):
            previous = 0
        previous = max([previous, *_saved_versions(directory, learned.name)])
        version = previous + 1
        keep = directory / f"{learned.name}.v{previous}.json"
        if not keep.exists():
            keep.write_bytes(path.read_bytes())
    card = learned.to_card(version, (now or datetime.now(UTC)).astimezone(UTC))
    write_json_atomically(path, card, indent=1)
    return path


def _saved_versions(directory: Path, name: str) -> list[int]:
    found = (re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.json", p.name) for p in directory.glob(f"{name}.v*.json"))
    return [int(m.group(1)) for m in found if m]
