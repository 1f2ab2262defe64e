"""Settings: built-in defaults < config file (TOML) < environment < command-line flags.

The file is ``$TAGGER_CONFIG`` or ``<XDG config dir>/genre-tagger/config.toml``::

    roots = ["/srv/music"]
    db = "sqlite:////var/lib/genre-tagger/tagger.db"
    model = "musicnn"            # a shipped model's name, or a path to its .json card
    vocabulary = "genres"        # a head of the model (see `tagger classify --json`)
    moods = true                 # write the MOOD field too, where the model has a mood head (false: never)
    mood_vocabulary = "my-moods" # a learned mood vocabulary (`tagger learn`; omit: the model's mood head)
    policy = "keep"              # keep | overwrite | merge
    min_confidence = 0.3
    top_k = 1
    workers = 2
    recorders = 4                # tracks stored and tagged at a time (1-16): their disk and database waits overlap
    recording_processes = 0      # `tagger scan`: N processes store and tag, `recorders` at a time each (0: the scan)
    max_windows = 8              # windows per track, spread over it (omit: the model's default)
    id3_version = 4              # 3 writes ID3v2.3 with id3_separator joining several genres
    id3_separator = "; "
    hardlinks = "keep"           # keep: hard-linked files written in place; break: replaced (links become copies)
    album_mode = "track"         # consensus: an album's tracks get the album's genre (mean); track: each its own
    playlists_dir = "/srv/music/Playlists"   # `tagger playlists` writes here; `tagger watch` keeps them current
    cluster = "tcp://scheduler:8786"     # `tagger scan` analyses on this Dask cluster (or "local:N"; README)
    path_map = { "/srv/music" = "/mnt/music" }   # where the cluster's workers see this machine's folders

    [genres]                     # the owner's vocabulary (names match ignoring case, spaces, punctuation)
    allow = ["Rock", "Jazz", "Hip-Hop"]   # only these are ever written (omit: any)
    ignore = ["Pop"]             # never written; the next genre takes the place if it passes the thresholds
    [genres.map]                 # alias = canonical name, for the model's genres and the owner's tags
    "Hip Hop" = "Hip-Hop"

    [watch]
    quiet_seconds = 5            # a file must be unchanged this long before it is read
    reconcile_hours = 24         # full re-check of the roots, for events the OS dropped
    polling = false              # polling observer, for network file systems

    [playlists]
    by = "genre"                 # genre | album-genre | mood
    min_confidence = 0.0         # a genre the model heard below this is left out
    refresh_seconds = 60         # the daemon rewrites them at most this often, after changes
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, MinLen
from platformdirs import user_config_dir, user_data_dir

from tagger.genres import GenreRules
from tagger.policy import Policy


class ConfigError(ValueError):
    pass


# The field types below are the whole rule for each setting: :func:`_convert` checks a value against
# them (strictly: "1" is not an integer, "no" is not a boolean) and :func:`_expected` words the same
# constraints for the message. (pydantic in strict mode does the same, but its import and schema
# build add 0.11 s CPU, 0.22 s wall, to every command that takes a flag or reads a config file,
# `tagger classify` included; this takes 1 ms.)
Count = Annotated[int, Ge(1)]
Seconds = Annotated[float, Ge(0)]


@dataclass(frozen=True)
class WatchSettings:
    quiet_seconds: Seconds = 5.0
    reconcile_hours: Seconds = 24.0
    polling: bool = False
    queue_limit: Count = 10_000


@dataclass(frozen=True)
class PlaylistSettings:
    by: Literal["genre", "album-genre", "mood"] = "genre"  # tagger.playlists.PlaylistKind's values
    min_confidence: Annotated[float, Ge(0), Le(1)] = 0.0
    refresh_seconds: Seconds = 60.0


@dataclass(frozen=True)
class Settings:
    roots: tuple[str, ...] = ()
    db: str | None = None  # None: $TAGGER_DB or the XDG data dir
    model: str | None = None  # None: the shipped default
    vocabulary: str | None = None
    moods: bool = True  # decided and written where the model has a mood head or mood_vocabulary is set
    mood_vocabulary: Annotated[str, MinLen(1)] | None = None
    policy: Policy = Policy.KEEP
    min_confidence: Annotated[float, Ge(0), Le(1)] = 0.0
    top_k: Count = 1
    workers: Count = 1
    threads: Count = 1
    recorders: Annotated[int, Ge(1), Le(16)] = 4  # tracks recorded at a time (tagger.recorders.MAX_RECORDERS)
    recording_processes: Annotated[int, Ge(0), Le(64)] = 0  # scan: processes recording (0: the scanning process)
    max_windows: Count | None = None
    id3_version: Literal[3, 4] = 4
    id3_separator: Annotated[str, MinLen(1)] = "; "
    follow_symlinks: bool = False
    tag_low_confidence: bool = False
    hardlinks: Literal["keep", "break"] = "keep"  # keep: a hard-linked file is written in place, not replaced
    # `tagger scan`; the daemon tags track by track. "track" by default: in the CV consensus cut coverage 0.39 -> 0.23
    album_mode: Literal["consensus", "track"] = "track"
    watch: WatchSettings = field(default_factory=WatchSettings)
    playlists_dir: str | None = None  # `tagger playlists` and the daemon's playlists folder
    playlists: PlaylistSettings = field(default_factory=PlaylistSettings)
    genres: GenreRules = field(default_factory=GenreRules)
    cluster: str | None = None  # `tagger scan --cluster`: a Dask scheduler's address, or local:N (tagger.cluster)
    path_map: dict[str, str] = field(default_factory=dict)  # this machine's folder -> the same on the workers

    def override(self, **changes: Any) -> Settings:
        """A copy with every non-None change applied (CLI flags left unset keep the file's value).

        The values are checked as the config file's are; an error names the flag (``--top-k``).
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        plain = {k: _table(v) if dataclasses.is_dataclass(v) else v for k, v in changes.items()}
        checked = _checked(plain, "command line")
        return replace(self, **{name: getattr(checked, name) for name in changes})

    def with_genre_lists(self, allow: list[str] | None = None, ignore: list[str] | None = None) -> Settings:
        """The ``--allow``/``--ignore`` flags: each given one replaces the file's list; ``[genres.map]`` stays."""
        if not allow and not ignore:
            return self
        allowed, ignored = tuple(allow or self.genres.allow), tuple(ignore or self.genres.ignore)
        return self.override(genres=replace(self.genres, allow=allowed, ignore=ignored))

    def override_table(self, table: str, **changes: Any) -> Settings:
        """A copy with every non-None change applied inside the ``[table]`` table (``--quiet-seconds`` sets
        ``[watch]``'s ``quiet_seconds``; the table's other keys stay), checked as :meth:`override`'s."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        return self.override(**{table: replace(getattr(self, table), **changes)})


def database_url(db: str | None = None) -> str:
    """The SQLAlchemy URL for ``db`` (a URL or a file path); None: ``$TAGGER_DB``, else the XDG data dir."""
    db = db or os.environ.get("TAGGER_DB")
    if not db:
        return f"sqlite:///{Path(user_data_dir('genre-tagger')) / 'tagger.db'}"
    return db if "://" in db else f"sqlite:///{Path(db).expanduser().resolve()}"


def config_path() -> Path:
    if env := os.environ.get("TAGGER_CONFIG"):
        return Path(env).expanduser()
    return Path(user_config_dir("genre-tagger")) / "config.toml"


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file if there is one; unknown keys are an error (typos should not pass silently)."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error
    return settings_from_dict(data, str(path))


def resolve_settings(
    path: Path | None = None,
    allow: list[str] | None = None,
    ignore: list[str] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> Settings:
    """What a command runs with: the config file (``path``, else :func:`config_path`), the command line's
    flags on top (None: not given), ``tables`` merged into their tables (``{"watch": {...}}``), then
    ``--allow``/``--ignore``. Raises :class:`ConfigError`; the daemon calls it again on SIGHUP."""
    settings = load_settings(path).override(**overrides)
    for table, changes in (tables or {}).items():
        settings = settings.override_table(table, **changes)
    return settings.with_genre_lists(allow, ignore)


def settings_from_dict(data: dict[str, Any], source: str = "config") -> Settings:
    """Settings from a parsed config file; every value is checked (type and range), see :func:`_build`."""
    unknown = set(data) - {f.name for f in fields(Settings)}
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    for table in fields(Settings):  # [watch], [genres]
        table_data, cls = data.get(table.name), _hints(Settings)[table.name]
        if dataclasses.is_dataclass(cls) and isinstance(table_data, dict):
            table_unknown = set(table_data) - {f.name for f in fields(cls) if f.init}
            if table_unknown:
                raise ConfigError(f"{source}: unknown [{table.name}] setting(s) {', '.join(sorted(table_unknown))}")
    settings = _checked(data, source)
    settings = replace(settings, roots=tuple(str(Path(r).expanduser()) for r in settings.roots))
    if settings.playlists_dir is not None:
        settings = replace(settings, playlists_dir=str(Path(settings.playlists_dir).expanduser()))
    return settings


def _table(value: Any) -> dict[str, Any]:
    """A settings table as the config file would give it (its init fields only)."""
    return {f.name: getattr(value, f.name) for f in fields(value) if f.init}


class _Mismatch(Exception):
    """A value that its field's type does not allow; ``where`` is the key path (``watch.polling``)."""

    def __init__(self, where: tuple[str, ...], annotation: Any, value: Any) -> None:
        super().__init__(".".join(where))
        self.where, self.annotation, self.value = where, annotation, value


def _checked(data: dict[str, Any], source: str) -> Settings:
    """Settings built from ``data`` (some or all of them), each value checked against its field's type."""
    try:
        settings: Settings = _build(Settings, data, ())
        return settings
    except _Mismatch as error:
        got = json.dumps(error.value, default=str, ensure_ascii=False)
        where = f"--{error.where[-1].replace('_', '-')}" if source == "command line" else f"{source}: {error}"
        raise ConfigError(f"{where}: expected {_expected(error.annotation)}, got {got}") from None


def _build(cls: Any, data: dict[str, Any], where: tuple[str, ...]) -> Any:
    hints = _hints(cls)
    values = {}
    for name, value in data.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise _Mismatch((*where, name), annotation, value)
            values[name] = _build(annotation, value, (*where, name))
        elif (converted := _convert(annotation, value)) is _INVALID:
            raise _Mismatch((*where, name), annotation, value)
        else:
            values[name] = converted
    return cls(**values)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


_INVALID = object()


def _convert(annotation: Any, value: Any) -> Any:
    """``value`` as ``annotation`` allows it, or ``_INVALID``. Strict, as TOML is typed: "1" is not
    an integer, "no" is not a boolean, a string is not a list, true is not 1."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        value = _convert(args[0], value)
        if value is _INVALID:
            return value
        for limit in args[1:]:
            if (
                (isinstance(limit, Ge) and not value >= limit.ge)
                or (isinstance(limit, Gt) and not value > limit.gt)
                or (isinstance(limit, Le) and not value <= limit.le)
                or (isinstance(limit, MinLen) and len(value) < limit.min_length)
            ):
                return _INVALID  # NaN fails every comparison, so it never passes a range
        return value
    if origin in (typing.Union, types.UnionType):  # X | None: None is never given (flags left unset are skipped)
        for option in args:
            if option is not type(None) and (converted := _convert(option, value)) is not _INVALID:
                return converted
        return _INVALID
    if origin is Literal:
        return value if any(type(value) is type(a) and value == a for a in args) else _INVALID
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return _INVALID
        items = [_convert(args[0], item) for item in value]
        return _INVALID if any(item is _INVALID for item in items) else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            return _INVALID
        pairs = [(_convert(args[0], k), _convert(args[1], v)) for k, v in value.items()]
        return _INVALID if any(x is _INVALID for pair in pairs for x in pair) else dict(pairs)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        try:
            return annotation(value)
        except ValueError:
            return _INVALID
    if annotation is float:
        return float(value) if type(value) in (int, float) else _INVALID
    return value if type(value) is annotation else _INVALID  # bool, int (a bool is not one), str


_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings")}


def _expected(annotation: Any) -> str:
    """What ``annotation`` allows, in words (``Annotated[int, Ge(1)]`` -> "an integer >= 1")."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        base, limits = _expected(args[0]), args[1:]
        low = next((f">= {m.ge}" for m in limits if isinstance(m, Ge)), None) or next(
            (f"> {m.gt}" for m in limits if isinstance(m, Gt)), None
        )
        high = next((m.le for m in limits if isinstance(m, Le)), None)
        if any(isinstance(m, MinLen) and m.min_length == 1 for m in limits):
            base = base.replace("a ", "a non-empty ", 1)
        if low and high is not None:
            return f"{base} from {low.removeprefix('>= ')} to {high}"
        return " ".join(filter(None, (base, low, f"<= {high}" if high is not None else None)))
    if origin in (typing.Union, types.UnionType):  # X | None: None is the default, left out of the file
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin is tuple:
        return f"a list of {_NAMES[args[0]][1]}"
    if origin is dict:
        return f"a table of {_NAMES[args[1]][1]}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(json.dumps(m.value) for m in annotation)
    if annotation is bool:
        return "true or false"
    if dataclasses.is_dataclass(annotation):
        return "a table of settings"
    return _NAMES[annotation][0]
