"""The transition table: every status move, every attempt edge and every event outcome."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from models.enums import EventKind
from models.enums import InteractionStatus as S

_RANK = {S.PENDING: 0, S.SENT: 1, S.DELIVERED: 2, S.OPENED: 3}


class Outcome(enum.StrEnum):
    """What an event did, as stored in the events' (and the inbox's) outcome column."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNKNOWN_REFERENCE = "unknown_reference"
    MALFORMED = "malformed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    NOTE_ADDED = "note_added"
    RESEND_REQUESTED = "resend_requested"
    RESEND_NOT_QUEUED = "resend_not_queued"
    FORCED_RESEND = "forced_resend"


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
    """Decide what a report of ``requested`` does to an interaction that is ``current``.

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


def reported_from(requested: S) -> frozenset[S]:
    """The statuses a report of ``requested`` moves on from."""
    return frozenset(current for current in S if decide(current, requested).changes)


class Move(enum.StrEnum):
    """A step of the attempt protocol or of staff work, beside the reports ``decide`` rules."""

    ATTEMPT = "attempt"
    REFUSED_ATTEMPT = "refused_attempt"
    RELEASE = "release"
    GIVE_UP = "give_up"
    RESEND = "resend"
    UNDO_RESEND = "undo_resend"
    FORCED_RESEND = "forced_resend"
    NOTE = "note"
    ACCEPT = "accept"
    MARK_UNKNOWN = "mark_unknown"


@dataclass(frozen=True)
class Edge:
    """Where a move may start (``creates``: also with no row yet), where it ends, what it records.

    A ``target`` of None leaves the status as it was and records no status to move to.
    """

    sources: frozenset[S]
    target: S | None
    kind: EventKind
    outcome: Outcome | None
    creates: bool = False


_RETRYABLE = frozenset({S.PENDING, S.FAILED})

# PENDING as a source of ATTEMPT, RELEASE, GIVE_UP and UNDO_RESEND also needs the claim state
# (held or released), which the writes check beside the status.
EDGES: Mapping[Move, Edge] = MappingProxyType(
    {
        # A dispatch claims a new key, or takes over a FAILED or released one for a new attempt.
        Move.ATTEMPT: Edge(_RETRYABLE, S.PENDING, EventKind.ATTEMPT_STARTED, None, creates=True),
        # The same, when there is no address to send to: the attempt fails before sending.
        Move.REFUSED_ATTEMPT: Edge(
            _RETRYABLE, S.FAILED, EventKind.ATTEMPT_STARTED, None, creates=True
        ),
        # A held claim given back (a transient error, or not found after its lease expired).
        Move.RELEASE: Edge(frozenset({S.PENDING}), S.PENDING, EventKind.ATTEMPT_RELEASED, None),
        # A released attempt whose retries ran out.
        Move.GIVE_UP: Edge(
            frozenset({S.PENDING}), S.FAILED, EventKind.STATUS_CHANGED, Outcome.APPLIED
        ),
        Move.RESEND: Edge(
            frozenset({S.FAILED}), S.PENDING, EventKind.STAFF_ACTION, Outcome.RESEND_REQUESTED
        ),
        # A resend the broker never took goes back to FAILED, unless a dispatch took it.
        Move.UNDO_RESEND: Edge(
            frozenset({S.PENDING}), S.FAILED, EventKind.STAFF_ACTION, Outcome.RESEND_NOT_QUEUED
        ),
        # A message past SENT cannot move back: its resend is a new interaction beside it.
        Move.FORCED_RESEND: Edge(
            frozenset({S.SENT, S.DELIVERED, S.OPENED}),
            None,
            EventKind.STAFF_ACTION,
            Outcome.FORCED_RESEND,
        ),
        # A phone call or manual notation is recorded as it happened: already delivered.
        Move.NOTE: Edge(
            frozenset(), S.DELIVERED, EventKind.STAFF_ACTION, Outcome.NOTE_ADDED, creates=True
        ),
        # A message a caller handed over, waiting unclaimed for the dispatch to take it over.
        Move.ACCEPT: Edge(
            frozenset(), S.PENDING, EventKind.STATUS_CHANGED, Outcome.APPLIED, creates=True
        ),
        # The provider still cannot say, long after sending, what became of the message.
        Move.MARK_UNKNOWN: Edge(
            frozenset({S.SENT}), S.SENT, EventKind.PROVIDER_EVENT, Outcome.OUTCOME_UNKNOWN
        ),
    }
)


def allows(move: Move, current: S | None) -> bool:
    """Whether ``move`` may start from ``current`` (None: no interaction yet)."""
    edge = EDGES[move]
    return edge.creates if current is None else current in edge.sources


def sources(move: Move) -> frozenset[S]:
    """The statuses ``move`` may start from: the status set of its conditional update."""
    return EDGES[move].sources


def target(move: Move) -> S:
    """The status ``move`` ends in; only for moves that set one."""
    ends = EDGES[move].target
    if ends is None:
        raise ValueError(f"{move} leaves the status as it was")
    return ends
