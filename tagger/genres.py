"""The owner's genre vocabulary: aliases to canonical names, an allow list and an ignore list.

Applied to the model's ranked genres after the model and before the policy (scan, watch,
classify), to the names ``tagger report`` counts, and to the owner's tags ``tagger learn`` reads.
Names match by :func:`genre_key`: case, spaces and punctuation do not matter ("hip hop" = "Hip-Hop").
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.aggregate import GenreScore

_CONNECTIVES = re.compile(r"\s*&\s*|\s+and\s+|\s*'n'?\s+|\s*'n'\s*|\s+n\s+")  # R&B, Drum'n'Bass, Rock n Roll

#: Spellings that obviously mean the same genre (after keys drop case, spaces and punctuation).
ALIASES: dict[str, str] = {
    "randb": "rnb",
    "rhythmandblues": "rnb",
    "dnb": "drumandbass",
    "dandb": "drumandbass",
    "drumnbass": "drumandbass",
    "rocknroll": "rockandroll",
    "ost": "soundtrack",
    "originalsoundtrack": "soundtrack",
    "altrock": "alternativerock",
    "progrock": "progressiverock",
    "electronicdance": "edm",
    "electronicdancemusic": "edm",
}


def genre_key(genre: str) -> str:
    """The label a genre spelling stands for: ``Hip Hop``, ``Hip-Hop`` and ``hiphop`` all give ``hiphop``."""
    text = unicodedata.normalize("NFKD", genre).casefold()
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = _CONNECTIVES.sub(" and ", f" {text} ")
    key = re.sub(r"[\W_]+", "", text)
    return ALIASES.get(key, key)


@dataclass(frozen=True)
class GenreRules:
    """The ``[genres]`` settings. ``map``: alias -> canonical name; ``allow``: when given, the only names ever written;
    ``ignore``: names never written. Allow and ignore are checked on the canonical name."""

    map: dict[str, str] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    # Lookup tables by genre key, built once.
    _map: dict[str, str] = field(init=False, repr=False, compare=False)
    _allow: set[str] = field(init=False, repr=False, compare=False)
    _ignore: set[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # frozen: the tables are set through object.__setattr__
        object.__setattr__(self, "_map", {genre_key(k): v for k, v in self.map.items()})
        object.__setattr__(self, "_allow", {genre_key(self.canonical(g)) for g in self.allow})
        object.__setattr__(self, "_ignore", {genre_key(self.canonical(g)) for g in self.ignore})

    @property
    def empty(self) -> bool:
        return not (self.map or self.allow or self.ignore)

    def canonical(self, genre: str) -> str:
        return self._map.get(genre_key(genre), genre)

    def permits(self, genre: str) -> bool:
        """Whether the canonical name ``genre`` may be written."""
        key = genre_key(genre)
        return key not in self._ignore and (not self._allow or key in self._allow)

    def fingerprint(self) -> str:
        """A short digest stored with each decision, so a scan with other rules re-decides the track."""
        data = json.dumps([sorted(self.map.items()), sorted(self.allow), sorted(self.ignore)])
        return hashlib.blake2b(data.encode(), digest_size=6).hexdigest()


def apply_rules(scores: Iterable[GenreScore], rules: GenreRules) -> list[GenreScore]:
    """``scores`` (most confident first) renamed to their canonical names, without the ones the rules
    refuse; of two labels mapped to one name the more confident stays. The thresholds are applied
    afterwards, so a refused genre's place goes to the next one only if that one passes them too."""
    out: list[GenreScore] = []
    seen: set[str] = set()
    for score in scores:
        name = rules.canonical(score.genre)
        key = genre_key(name)
        if key in seen or not rules.permits(name):
            continue
        seen.add(key)
        out.append(score if name == score.genre else replace(score, genre=name))
    return out
