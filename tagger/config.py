"""Settings: built-in defaults < config file (TOML) < environment < command-line flags.

The file is ``$TAGGER_CONFIG`` or ``<XDG config dir>/genre-tagger/config.toml``::

    roots = ["/srv/music"]
    db = "sqlite:////var/lib/genre-tagger/tagger.db"
    model = "musicnn"            # a shipped model's name, or a path to its .json card
    vocabulary = "gtzan"         # a head of the model (see `tagger classify --json`)
    policy = "keep"              # keep | overwrite | merge
    min_confidence = 0.3
    top_k = 1
    workers = 2
    max_windows = 8              # windows per track, spread over it (omit: the model's default)
    id3_version = 4              # 3 writes ID3v2.3 with id3_separator joining several genres
    id3_separator = "; "

    [watch]
    quiet_seconds = 5            # a file must be unchanged this long before it is read
    reconcile_hours = 24         # full re-check of the roots, for events the OS dropped
    polling = false              # polling observer, for network file systems
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
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, MinLen
from platformdirs import user_config_dir, user_data_dir

from tagger.policy import Policy

if TYPE_CHECKING:
    from pydantic import TypeAdapter


class ConfigError(ValueError):
    pass


# The types below are the whole rule for each setting: pydantic checks them (strictly: "1" is not
# an integer, "no" is not a boolean) and :func:`_expected` words the same constraints for the message.
Count = Annotated[int, Ge(1)]
Seconds = Annotated[float, Ge(0)]


@dataclass(frozen=True)
class WatchSettings:
    quiet_seconds: Seconds = 5.0
    reconcile_hours: Seconds = 24.0
    polling: bool = False
    queue_limit: Count = 10_000


@dataclass(frozen=True)
class Settings:
    roots: tuple[str, ...] = ()
    db: str | None = None  # None: $TAGGER_DB or the XDG data dir
    model: str | None = None  # None: the shipped default
    vocabulary: str | None = None
    policy: Policy = Policy.KEEP
    min_confidence: Annotated[float, Ge(0), Le(1)] = 0.0
    top_k: Count = 1
    workers: Count = 1
    threads: Count = 1
    max_windows: Count | None = None
    id3_version: Literal[3, 4] = 4
    id3_separator: Annotated[str, MinLen(1)] = "; "
    follow_symlinks: bool = False
    tag_low_confidence: bool = False
    watch: WatchSettings = field(default_factory=WatchSettings)

    def override(self, **changes: Any) -> Settings:
        """A copy with every non-None change applied (CLI flags left unset keep the file's value).

        The values are checked as the config file's are; an error names the flag (``--top-k``).
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        plain = {k: dataclasses.asdict(v) if isinstance(v, WatchSettings) else v for k, v in changes.items()}
        checked = _validate(plain, "command line")
        return replace(self, **{name: getattr(checked, name) for name in changes})


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


def settings_from_dict(data: dict[str, Any], source: str = "config") -> Settings:
    """Settings from a parsed config file; every value is checked (type and range), see :func:`_validate`."""
    unknown = set(data) - {f.name for f in fields(Settings)}
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    watch_data = data.get("watch", {})
    watch_unknown = set(watch_data) - {f.name for f in fields(WatchSettings)} if isinstance(watch_data, dict) else ()
    if watch_unknown:
        raise ConfigError(f"{source}: unknown [watch] setting(s) {', '.join(sorted(watch_unknown))}")
    if not data:
        return Settings()
    settings = _validate(data, source)
    return replace(settings, roots=tuple(str(Path(r).expanduser()) for r in settings.roots))


@functools.cache
def _adapter() -> TypeAdapter[Settings]:
    from pydantic import TypeAdapter  # here, not at the top: `tagger classify` without a config never pays for it

    return TypeAdapter(Settings)


def _validate(data: dict[str, Any], source: str) -> Settings:
    """``data`` (some or all settings) checked against the field types above, strictly.

    Through JSON so that strict mode takes TOML's arrays for tuples and strings for enums, and
    nothing else: no "1" for 1, no "no" for false, no string split into a list of characters.
    """
    from pydantic import ValidationError

    try:
        # A TOML date becomes an object, which no setting takes.
        return _adapter().validate_json(json.dumps(data, default=lambda o: {"date": str(o)}), strict=True)
    except ValidationError as error:
        raise ConfigError(_describe(error.errors()[0], data, source)) from None


def _describe(error: Any, data: dict[str, Any], source: str) -> str:
    """One line: where (key, or flag on the command line), what is allowed, and what was given."""
    owner: Any = Settings
    path: list[str] = []
    value: Any = data
    expected = ""
    for part in error["loc"]:
        hints = typing.get_type_hints(owner, include_extras=True) if dataclasses.is_dataclass(owner) else {}
        if not isinstance(part, str) or part not in hints or not isinstance(value, dict):
            break
        path.append(part)
        value, owner = value[part], hints[part]
        expected = _expected(owner)
    if not path:
        return f"{source}: {error['msg']}"
    if source == "command line":
        return f"--{path[-1].replace('_', '-')}: expected {expected}, got {_shown(value)}"
    return f"{source}: {'.'.join(path)}: expected {expected}, got {_shown(value)}"


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
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(json.dumps(m.value) for m in annotation)
    if annotation is bool:
        return "true or false"
    if dataclasses.is_dataclass(annotation):
        return "a table of settings"
    return _NAMES[annotation][0]


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
