"""One role's decision for one track: what its field (the genre, the mood) should say, from the model's
proposal, what the file carries, whether that is our own last write, and the policy.

Both roles follow the one rule (:func:`decide_role`); only the values and the field differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tagger.aggregate import TrackGenres
from tagger.policy import Policy, decide
from tagger.track import Outcome


@dataclass
class FieldState:
    """One role's field in one file, as read before the decision."""

    existing: list[str]  # the field's own values (``tags.read(role)``)
    owners: list[str]  # every value of the role the file carries (``tags.read_all(role)``): what the policy keeps
    ours: bool = False  # ``existing`` is our own last applied write of this role


@dataclass(frozen=True)
class RoleDecision:
    """``target``: what to write into the field (as the file will store it); None: leave the field alone."""

    outcome: Outcome  # TAGGED when there is a target (the write then makes it TAGGED, WOULD_TAG or FAILED)
    target: list[str] | None = None
    reason: str = ""


def decide_role(
    decision: TrackGenres,
    field: FieldState,
    policy: Policy,
    tag_low_confidence: bool,
    as_stored: Callable[[list[str]], list[str]],
) -> RoleDecision:
    """The field's new values under ``policy``; an unsure decision writes nothing unless ``tag_low_confidence``."""
    if not decision.confident and not tag_low_confidence:
        return RoleDecision(Outcome.LOW_CONFIDENCE, reason=low_confidence_reason(decision))
    proposed = list(decision.chosen)
    target = decide(field.owners, proposed, policy, field.ours)
    if target is not None:
        target = as_stored(target)  # e.g. ID3v2.3 joins several values into one
        if target == field.existing:
            target = None
    if target is None:
        kept = bool(field.owners) and field.owners != proposed and not field.ours
        return RoleDecision(Outcome.KEPT if kept else Outcome.UNCHANGED)
    return RoleDecision(Outcome.TAGGED, target)


def low_confidence_reason(decision: TrackGenres) -> str:
    """Why nothing was written: an abstaining head lists its ranked candidates ("uncertain: Rock 0.62, Pop 0.55")."""
    if decision.refused:
        return f"no allowed genre (model: {decision.top.genre} {decision.top.confidence:.2f})"
    if decision.abstained:
        return "uncertain: " + ", ".join(f"{s.genre} {s.confidence:.2f}" for s in decision.ranked)
    return f"confidence {decision.top.confidence:.2f}"
