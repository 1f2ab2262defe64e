"""The owner's genre vocabulary: aliases to canonical names, an allow list and an ignore list.

Applied to the model's ranked genres after the model and before the policy (scan, watch,
classify), to the names ``tagger report`` counts, and to the owner's tags ``tagger learn`` reads.
Names match by :func:`genre_key`: case, spaces and punctuation do not matter ("hip hop" = "Hip-Hop").
The owner's tag values become names by :func:`split_genres` (separators, ID3v1 codes, placeholders).

The owner's MOOD values (``tagger learn --field mood``) go through the same spelling rules by role
(:func:`tag_key`, :func:`split_values`, :class:`GenreNormaliser` with ``role="mood"``): case, spaces,
punctuation, separators and placeholders, yes; the genre aliases (``DnB`` = ``Drum & Bass``), the
ID3v1 genre codes (``(17)`` = Rock) and the ``[genres]`` map, no: those are about genres only.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mutagen._constants import GENRES
from mutagen.id3 import TCON

if TYPE_CHECKING:
    from tagger.aggregate import GenreScore
    from tagger.model import HeadRole

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
    return tag_key(genre, "genre")


def tag_key(value: str, role: HeadRole = "genre") -> str:
    """The label a spelling stands for; case, accents, spaces, punctuation and ``&``/``and`` do not matter
    (``Laid-Back`` = ``laid back``), and for genres the :data:`ALIASES` apply too."""
    text = unicodedata.normalize("NFKD", value).casefold()
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = _CONNECTIVES.sub(" and ", f" {text} ")
    key = re.sub(r"[\W_]+", "", text)
    return ALIASES.get(key, key) if role == "genre" else key


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


# ---------------------------------------------------------------------------------------- the owner's tags
_SEPARATORS = re.compile(r"\s*(?:;|/|,|\||\\\\|\x00)\s*")  # ID3v2.3 joins with "; " or "/"; "\\" by some taggers
_ID3_CODE = re.compile(r"^\s*(?:\((?:\d+|RX|CR)\)|\d+\s*$)")  # "(17)", "(17)Rock", "(RX)", bare "17" (ID3v2.4)
_ID3_NON_GENRES = {"remix", "cover"}  # what "(RX)" / "(CR)" expand to: not genres
_PLACEHOLDERS = {"", "unknown", "other", "none", "misc", "miscellaneous", "na", "null", "undefined"}


def split_genres(values: Iterable[str]) -> list[str]:
    """Tag values -> single genre spellings: separators split, ID3v1 codes named, junk dropped.

    ``["Drone; Ambient", "(26)(17)", " DRONE "]`` gives ``["Drone", "Ambient", "Ambient", "Rock", "DRONE"]``.
    """
    return split_values(values, "genre")


def split_values(values: Iterable[str], role: HeadRole = "genre") -> list[str]:
    """Tag values of ``role``'s field -> single spellings (see :func:`split_genres`); ID3v1 codes are
    genres only, so in a MOOD field ``(17)`` stays as written."""

    def placeholder(text: str) -> bool:  # "Genre" in a genre field, "Mood" in a mood field: no value
        return (key := tag_key(text, role)) in _PLACEHOLDERS or key == role

    out: list[str] = []
    for value in values:
        if placeholder(str(value)):  # before splitting: "n/a" is no genre, nor "n" and "a"
            continue
        for part in _SEPARATORS.split(str(value)):
            names = _id3_names(part) if role == "genre" and _ID3_CODE.match(part) else [part]
            for name in names:
                spelled = " ".join(name.split()).strip("\"'")
                if not placeholder(spelled):
                    out.append(spelled)
    return out


def _id3_names(value: str) -> list[str]:
    """``(17)``/``17``/``(26)(17)Hard Rock`` through mutagen's ID3v1 genre list (``mutagen._constants.GENRES``)."""
    if value.strip().isdigit() and int(value) >= len(GENRES):
        return []  # "1999" is a year, not a genre code
    names = TCON(encoding=3, text=[value.strip()]).genres
    return [name for name in names if name.casefold() not in _ID3_NON_GENRES]


def normalise_genres(values: Iterable[str]) -> list[str]:
    """The distinct label keys of one track's genre values, in the order they first appear."""
    return list(dict.fromkeys(genre_key(name) for name in split_genres(values)))


class GenreNormaliser:
    """Labels for many tracks, remembering how the owner spells each label most often.

    The spelling written into files is the owner's commonest one; ties prefer a capitalised
    form (``Drone`` over ``drone`` and ``DRONE``), then alphabetical order. ``role="mood"`` reads
    MOOD values: the same spelling rules, without the genre-only ones (aliases, ID3v1 codes, ``rules``).
    """

    def __init__(self, rules: GenreRules | None = None, role: HeadRole = "genre") -> None:
        if role != "genre" and rules is not None and not rules.empty:
            raise ValueError("the [genres] rules are about genres: a mood normaliser takes none")
        self._spellings: dict[str, Counter[str]] = defaultdict(Counter)
        self.rules = rules or GenreRules()
        self.role: HeadRole = role

    def labels(self, values: Iterable[str]) -> list[str]:
        keys: list[str] = []
        # The owner's aliases first: "Hip Hop" = "Rap" (empty rules for moods).
        for name in map(self.rules.canonical, split_values(values, self.role)):
            key = tag_key(name, self.role)
            self._spellings[key][name] += 1
            if key not in keys:
                keys.append(key)
        return keys

    def spelling(self, key: str) -> str:
        counts = self._spellings.get(key)
        if not counts:
            return key
        return min(counts, key=lambda s: (-counts[s], s.isupper(), s.islower(), s))
