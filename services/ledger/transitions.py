"""The status transition table: status moves forward only, and every event is recorded."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from models.enums import InteractionStatus as S

_RANK = {S.PENDING: 0, S.SENT: 1, S.DELIVERED: 2, S.OPENED: 3}


class Outcome(enum.StrEnum):
    """What a status event did to an interaction."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNKNOWN_REFERENCE = "unknown_reference"


@dataclass(frozen=True)
class Transition:
    """The decision for one (current, requested) pair."""

    outcome: Outcome
    new_status: S

    @property
    def changes(self) -> bool:
        """Whether the interaction's status changes."""
        return self.outcome is Outcome.APPLIED


def decide(current: S, requested: S) -> Transition:
    """Decide what ``requested`` does to an interaction that is ``current``.

    Forward moves apply; the same status again is a duplicate; anything that would move
    backwards, or out of FAILED, is stale. A bounce after DELIVERED still counts as FAILED,
    but once the customer OPENED the message a late failure report cannot be true.
    """
    if requested is current:
        return Transition(Outcome.DUPLICATE, current)
    if current is S.FAILED:
        return Transition(Outcome.STALE, current)
    if requested is S.FAILED:
        if current is S.OPENED:
            return Transition(Outcome.STALE, current)
        return Transition(Outcome.APPLIED, requested)
    if _RANK[requested] > _RANK[current]:
        return Transition(Outcome.APPLIED, requested)
    return Transition(Outcome.STALE, current)
