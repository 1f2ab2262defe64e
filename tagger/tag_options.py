"""How results turn into tags: the options of one scan or daemon (command-line flags and config)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tagger.config import Settings
from tagger.genres import GenreRules
from tagger.policy import Policy


@dataclass(frozen=True)
class TagOptions:
    """How results turn into tags (CLI flags and config)."""

    policy: Policy = Policy.KEEP
    min_confidence: float = 0.0
    top_k: int = 1
    dry_run: bool = False
    tag_low_confidence: bool = False
    vocabulary: str | None = None  # a model head or a learned vocabulary; None = the card's default
    id3_version: int = 4
    id3_separator: str = "; "
    verify: bool = False  # re-read every write and report a mismatch
    genres: GenreRules = field(default_factory=GenreRules)  # the owner's aliases, allow and ignore lists
    hardlinks: str = "keep"  # keep: a hard-linked file is written in place; break: replaced (links become copies)
    # Moods are decided and written into the MOOD field where the card has a mood head or mood_vocabulary is set.
    moods: bool = True
    mood_vocabulary: str | None = None  # a learned mood vocabulary (or another mood head); None: the card's

    @property
    def decided_with(self) -> str:
        """The options a track's decision depends on, stored with its result: a scan with others re-decides
        the track from that stored result (no decoding), one with the same ones skips it."""
        # The defaults (moods on, the card's mood head) add nothing, so results stored before moods keep theirs.
        mood = " moods=off" if not self.moods else ""
        if self.moods and self.mood_vocabulary:  # a digest: the column holds 128 characters
            mood = " moods=" + hashlib.blake2b(self.mood_vocabulary.encode(), digest_size=6).hexdigest()
        return (
            f"policy={self.policy.value} top_k={self.top_k} min_confidence={self.min_confidence:g} "
            f"tag_low_confidence={int(self.tag_low_confidence)}"
            + ("" if self.genres.empty else f" genres={self.genres.fingerprint()}")
            + mood
        )

    @classmethod
    def from_settings(cls, settings: Settings, dry_run: bool = False, verify: bool = False) -> TagOptions:
        """The options a config file and command line give (the daemon re-reads them on SIGHUP)."""
        return cls(
            policy=settings.policy,
            min_confidence=settings.min_confidence,
            top_k=settings.top_k,
            dry_run=dry_run,
            tag_low_confidence=settings.tag_low_confidence,
            vocabulary=settings.vocabulary,
            id3_version=settings.id3_version,
            id3_separator=settings.id3_separator,
            verify=verify,
            genres=settings.genres,
            hardlinks=settings.hardlinks,
            moods=settings.moods,
            mood_vocabulary=settings.mood_vocabulary,
        )
