"""beets plugin: ``beet genretag [QUERY]`` sets audio-based genres from genre-tagger's model.

Each matched item goes through genre-tagger's own rooms (decode -> windows -> model -> aggregate,
then :func:`tagger.policy.decide`); the genre is set on beets' item field and stored in beets'
library, so beets stays the source of truth: files are written as beets writes them (``import.write``,
``-w``/``-W``, or a later ``beet write``). genre-tagger's own database is not used.

Configuration (``genretag:`` in beets' config.yaml)::

    genretag:
        auto: no            # also on import
        policy: keep        # keep | overwrite | merge (genre-tagger's policies)
        min_confidence: 0.0
        top_k: 1
        model: null         # genre-tagger's shipped default
        vocabulary: null    # a model head, or one made by `tagger learn`
        max_windows: null   # the model's
        genre_map: {}       # alias -> canonical name, e.g. {Hip Hop: Hip-Hop}
        allow: []           # when given, the only genres ever set
        ignore: []          # genres never set
        moods: yes          # also set the flexible field ``mood`` where the model has a mood head

The genres it set last are kept in the flexible field ``genretag`` (and the model's confidence in
``genretag_confidence``): a genre that still equals them is the plugin's own earlier guess, replaced
freely; any other genre is the owner's and follows ``policy``.

Where the model has a mood head, the same pass also sets beets' flexible field ``mood`` (Happy,
Aggressive, Sad, Relaxed), under the same policy (ours: the mood in ``genretag_mood``), and nothing
where the head abstains; beets stores it in its library (its file writer has no MOOD field).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import confuse
from beets import ui
from beets.dbcore import types
from beets.library import Item
from beets.plugins import BeetsPlugin

from tagger.aggregate import TrackGenres, aggregate
from tagger.config import database_url
from tagger.errors import TaggerError
from tagger.genres import GenreRules
from tagger.policy import Policy, decide

if TYPE_CHECKING:
    import optparse

    from beets.importer import ImportSession, ImportTask
    from beets.library import Library

    from tagger.model import Classifier
    from tagger.pipeline import TrackAnalysis
    from tagger.vocabulary import Vocabulary

#: beets 2.x before the multi-valued field had ``genre`` (one string); later ones ``genres`` (a list).
GENRE_FIELD = "genres" if "genres" in Item._fields else "genre"
OURS_FIELD = "genretag"  # flexible field: the genres this plugin set last, joined by OURS_SEPARATOR
OURS_SEPARATOR = "; "
MOOD_FIELD = "mood"  # flexible field: the track's mood
OURS_MOOD_FIELD = "genretag_mood"  # flexible field: the mood this plugin set last


def item_genres(item: Item) -> list[str]:
    value = item.get(GENRE_FIELD)
    if GENRE_FIELD == "genres":
        return [g for g in (value or []) if g]
    return [value] if value else []


def set_item_genres(item: Item, genres: list[str]) -> None:
    item[GENRE_FIELD] = genres if GENRE_FIELD == "genres" else OURS_SEPARATOR.join(genres)


@dataclass(frozen=True)
class Change:
    """What the plugin decided for one item."""

    outcome: str  # tagged | kept | unchanged | low-confidence | failed
    existing: list[str]
    target: list[str] | None = None  # the genres to set (None: leave the item as it is)
    genres: TrackGenres | None = None
    reason: str = ""
    mood_target: list[str] | None = None  # the mood to set (None: leave ``mood`` as it is)
    mood: str = ""  # what the mood decision was, for the line: "mood Sad", "mood uncertain", ...

    def line(self, item: Item, pretend: bool) -> str:
        outcome = "would tag" if pretend and self.outcome == "tagged" else self.outcome
        confidence = f" {self.genres.top.confidence:.2f}" if self.genres is not None else ""
        proposed = ", ".join(self.target if self.target is not None else self.genres.chosen if self.genres else [])
        what = self.reason or f"{', '.join(self.existing) or '(none)'} -> {proposed or '(none)'}{confidence}"
        return f"{outcome:>14}  {os.fsdecode(item.path)}  {what}" + (f"; {self.mood}" if self.mood else "")


class GenreTagPlugin(BeetsPlugin):
    @property
    def item_types(self) -> dict[str, types.Type]:  # `beet ls genretag_confidence:..0.8` compares numbers
        return {"genretag_confidence": types.FLOAT}

    def __init__(self) -> None:
        super().__init__()
        self.config.add(
            {
                "auto": False,
                "policy": Policy.KEEP.value,
                "min_confidence": 0.0,
                "top_k": 1,
                "model": None,
                "vocabulary": None,
                "max_windows": None,
                "genre_map": {},
                "allow": [],
                "ignore": [],
                "moods": True,
            }
        )
        self._loaded: tuple[Classifier, Vocabulary, Vocabulary | None] | None = None
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    # ------------------------------------------------------------------ options
    @property
    def policy(self) -> Policy:
        return Policy(self.config["policy"].as_choice([p.value for p in Policy]))

    @property
    def rules(self) -> GenreRules:
        mapping = self.config["genre_map"].get(dict)
        return GenreRules(
            map={str(k): str(v) for k, v in mapping.items()},
            allow=tuple(self.config["allow"].as_str_seq()),
            ignore=tuple(self.config["ignore"].as_str_seq()),
        )

    def _check_options(self) -> None:
        """Every option read once before any item is touched: a bad one is beets' one-line config error."""
        _ = self.policy, self.rules
        confidence = self.config["min_confidence"].as_number()
        if not 0 <= confidence <= 1:
            raise confuse.ConfigValueError(f"genretag.min_confidence must be between 0 and 1, not {confidence}")
        if self.config["top_k"].get(int) < 1:
            raise confuse.ConfigValueError("genretag.top_k must be 1 or more")
        self.config["max_windows"].get(confuse.Optional(int))
        self.config["moods"].get(bool)

    def _classifier(self) -> tuple[Classifier, Vocabulary, Vocabulary | None]:
        """The model, its genre vocabulary and its mood head (None: none, or ``moods: no``), loaded once
        (seconds) and only when an item needs it."""
        if self._loaded is None:
            from tagger.model import Classifier, load_card
            from tagger.vocabulary import resolve_mood_vocabulary, resolve_vocabulary

            try:
                card = load_card(self.config["model"].get(confuse.Optional(str)))
                name = self.config["vocabulary"].get(confuse.Optional(str))
                moods = resolve_mood_vocabulary(card, None, database_url()) if self.config["moods"].get(bool) else None
                self._loaded = Classifier(card), resolve_vocabulary(card, name, database_url()), moods
            except (TaggerError, ValueError) as error:
                raise ui.UserError(f"genretag: {error}") from error
        return self._loaded

    # ------------------------------------------------------------------ one item
    def decide(self, item: Item) -> Change:
        """Classify ``item``'s file and decide its genres under the policy; changes nothing."""
        from tagger.pipeline import analyse_track

        classifier, vocabulary, mood_vocabulary = self._classifier()
        existing = item_genres(item)
        try:
            analysis = analyse_track(
                os.fsdecode(item.path), classifier, self.config["max_windows"].get(confuse.Optional(int))
            )
        except (TaggerError, OSError) as error:
            return Change("failed", existing, reason=str(error))
        mood = {} if mood_vocabulary is None else self._decide_mood(item, mood_vocabulary, analysis)
        genres = aggregate(
            vocabulary.window_probabilities(analysis),
            vocabulary.head,
            self.config["top_k"].get(int),
            self.config["min_confidence"].as_number(),
            self.rules,
        )
        if not genres.confident:
            unsure = f"left as it is: the model is unsure ({genres.top.genre} {genres.top.confidence:.2f})"
            return Change("low-confidence", existing, genres=genres, reason=unsure, **mood)
        ours = bool(existing) and existing == [g for g in str(item.get(OURS_FIELD, "")).split(OURS_SEPARATOR) if g]
        target = decide(existing, list(genres.chosen), self.policy, ours)
        if target is None:
            kept = bool(existing) and existing != list(genres.chosen) and not ours
            return Change("kept" if kept else "unchanged", existing, genres=genres, **mood)
        return Change("tagged", existing, target, genres, **mood)

    def _decide_mood(self, item: Item, vocabulary: Vocabulary, analysis: TrackAnalysis) -> dict[str, Any]:
        """The ``mood`` field under the policy, from the analysis the genres come from (nothing decoded again)."""
        from tagger.classify import track_moods

        found = track_moods(vocabulary, analysis)
        top = found.decision.top
        if found.uncertain:
            return {"mood": f"mood uncertain ({top.genre} {top.confidence:.2f})"}
        existing = [str(item[MOOD_FIELD])] if item.get(MOOD_FIELD) else []
        ours = bool(existing) and existing == [str(item.get(OURS_MOOD_FIELD, ""))]
        target = decide(existing, list(found.decision.chosen), self.policy, ours)
        if target is None:
            kept = bool(existing) and existing != list(found.decision.chosen) and not ours
            return {"mood": f"mood {'kept' if kept else 'unchanged'} {', '.join(existing)}"}
        return {"mood_target": target, "mood": f"mood {', '.join(target)} {top.confidence:.2f}"}

    def apply(self, item: Item, change: Change, write: bool) -> None:
        """Set the decided genres and mood on beets' item and store it (and write the file when ``write``)."""
        if change.target is not None:
            assert change.genres is not None
            set_item_genres(item, change.target)
            item[OURS_FIELD] = OURS_SEPARATOR.join(change.target)
            item["genretag_confidence"] = round(change.genres.top.confidence, 4)
        if change.mood_target is not None:
            item[MOOD_FIELD] = item[OURS_MOOD_FIELD] = OURS_SEPARATOR.join(change.mood_target)
        item.try_sync(write=write, move=False)

    def tag(self, items: Iterable[Item], write: bool, pretend: bool) -> None:
        self._check_options()
        for item in items:
            change = self.decide(item)
            if (change.target is not None or change.mood_target is not None) and not pretend:
                self.apply(item, change, write)
            ui.print_(change.line(item, pretend))

    # ------------------------------------------------------------------ beets doors
    def commands(self) -> list[ui.Subcommand]:
        command = ui.Subcommand("genretag", help="set genres from the audio (genre-tagger's model)")
        command.parser.add_option("-p", "--pretend", action="store_true", help="show what would change; change nothing")
        command.parser.add_option("-w", "--write", action="store_true", default=None, help="write the files too")
        command.parser.add_option("-W", "--nowrite", action="store_false", dest="write", help="do not write files")

        def run(lib: Library, opts: optparse.Values, args: list[str]) -> None:
            self.tag(lib.items(args), write=ui.should_write(opts.write), pretend=bool(opts.pretend))

        command.func = run
        return [command]

    def imported(self, session: ImportSession, task: ImportTask) -> Any:
        """``auto: yes``: the imported items, stored only (the importer writes files after this stage)."""
        self.tag(task.imported_items(), write=False, pretend=False)
