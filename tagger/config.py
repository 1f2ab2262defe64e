"""Settings: built-in defaults < config file (TOML) < environment < command-line flags.

The file is ``$TAGGER_CONFIG`` or ``<XDG config dir>/genre-tagger/config.toml``::

    roots = ["/srv/music"]
    db = "sqlite:////var/lib/genre-tagger/tagger.db"
    model = "musicnn"            # a shipped model's name, or a path to its .json card
    vocabulary = "genres"        # a head of the model (see `tagger classify --json`)
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

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir, user_data_dir

from tagger.policy import Policy


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class WatchSettings:
    quiet_seconds: float = 5.0
    reconcile_hours: float = 24.0
    polling: bool = False
    queue_limit: int = 10_000


@dataclass(frozen=True)
class Settings:
    roots: tuple[str, ...] = ()
    db: str | None = None  # None: $TAGGER_DB or the XDG data dir
    model: str | None = None  # None: the shipped default
    vocabulary: str | None = None
    policy: Policy = Policy.KEEP
    min_confidence: float = 0.0
    top_k: int = 1
    workers: int = 1
    threads: int = 1
    max_windows: int | None = None
    id3_version: int = 4
    id3_separator: str = "; "
    follow_symlinks: bool = False
    tag_low_confidence: bool = False
    watch: WatchSettings = field(default_factory=WatchSettings)

    def override(self, **changes: Any) -> Settings:
        """A copy with every non-None change applied (CLI flags left unset keep the file's value)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


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
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error
    return settings_from_dict(data, str(path))


def settings_from_dict(data: dict[str, Any], source: str = "config") -> Settings:
    known = {f.name for f in fields(Settings)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    values = dict(data)
    watch_data = values.pop("watch", {})
    watch_known = {f.name for f in fields(WatchSettings)}
    if set(watch_data) - watch_known:
        raise ConfigError(f"{source}: unknown [watch] setting(s) {', '.join(sorted(set(watch_data) - watch_known))}")
    try:
        if "policy" in values:
            values["policy"] = Policy(values["policy"])
        if "roots" in values:
            values["roots"] = tuple(str(Path(r).expanduser()) for r in values["roots"])
        return Settings(**values, watch=WatchSettings(**watch_data))
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: {error}") from error
