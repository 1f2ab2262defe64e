"""What to write, given what the file says and what the model proposes."""

from __future__ import annotations

from enum import StrEnum


class Policy(StrEnum):
    KEEP = "keep"  # never overwrite a genre the owner set
    OVERWRITE = "overwrite"
    MERGE = "merge"  # the owner's genres first, then the proposed ones not already there


def decide(existing: list[str], proposed: list[str], policy: Policy, existing_is_ours: bool) -> list[str] | None:
    """The genre list to write, or None when the file should stay as it is.

    ``existing_is_ours``: the file's current genre is the one this tool wrote last, so it is
    replaced freely (a new model or vocabulary supersedes our own earlier guess).
    """
    if not proposed:
        return None
    if existing_is_ours or not existing or policy is Policy.OVERWRITE:
        target = list(proposed)
    elif policy is Policy.KEEP:
        return None
    else:
        seen = {g.casefold() for g in existing}
        target = list(existing) + [g for g in proposed if g.casefold() not in seen]
    return None if target == existing else target
