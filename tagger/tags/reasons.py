"""A short, table-friendly reason for a failure reading or writing tags."""

from __future__ import annotations

from pathlib import Path

from mutagen import MutagenError

from tagger.files import OS_REASONS

_MAX_REASON = 160

_ERRNO_REASONS = OS_REASONS


def reason_for(exc: BaseException, path: Path | None = None) -> str:
    """A short, table-friendly reason for ``exc`` (mutagen's own message where it has one)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:  # mutagen wraps IOError; look at the whole chain
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for link in chain:
        if isinstance(link, OSError) and link.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[link.errno]
    for link in chain:
        if isinstance(link, MemoryError):
            return "out of memory reading tags"
        if isinstance(link, RecursionError):
            return "tags nested too deeply"
    for link in chain:
        text = str(link).strip()
        if text:
            message = text.splitlines()[0]
            if path is not None:
                message = message.replace(repr(str(path)), "file").replace(str(path), "file")
            if not isinstance(link, MutagenError | OSError):
                message = f"{type(link).__name__}: {message}"
            return message[:_MAX_REASON]
    if any(isinstance(link, OSError) for link in chain):
        return "truncated data (a size field points past the end of the file)"
    return type(exc).__name__
