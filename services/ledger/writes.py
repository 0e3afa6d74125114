"""The only writes to the ledger: every status move and every event, by the transition table.

Each status move is a conditional update (or, on a row already locked, a change to it) whose
status set comes from ``transitions``; each event is one INSERT built by ``event_values``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.enums import ChannelType, EventKind, InteractionStatus
from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from providers.base import SendReceipt
from services.ledger import statements
from services.ledger.transitions import (
    EDGES,
    Move,
    Outcome,
    Transition,
    allows,
    decide,
    reported_from,
    sources,
    target,
)

PROVIDER_FAILED = "reported failed by the provider"
_TIMESTAMP = {
    InteractionStatus.SENT: "sent_at",
    InteractionStatus.DELIVERED: "delivered_at",
    InteractionStatus.OPENED: "opened_at",
    InteractionStatus.FAILED: "failed_at",
}
_TABLE = CustomerInteraction


@dataclass(frozen=True)
class Entry:
    """Who writes an event and what it carries besides the status move and its outcome."""

    source: str
    actor: str | None = None
    attempt: int | None = None
    provider: str | None = None
    provider_event_id: str | None = None
    reference: str | None = None
    detail: dict[str, Any] | None = None
    # Free text a member of staff gave: sealed in its own column, as it may name the customer.
    reason: str | None = None


@dataclass(frozen=True)
class Attempt:
    """What one dispatch attempt writes to its interaction."""

    recipient: str | None
    recipient_hash: str | None
    template_key: str
    batch_id: str | None
    payload: dict[str, Any] = field(repr=False)
    # Why the attempt failed before sending (no usable address), or None to send it.
    failure: str | None
    lease_seconds: float
    reply_to_id: str | None = None

    @property
    def move(self) -> Move:
        """An attempt to send, or one refused before sending."""
        return Move.REFUSED_ATTEMPT if self.failure else Move.ATTEMPT

    def values(self, now: datetime, dialect: str) -> dict[str, Any]:
        """The interaction's columns this attempt sets.

        On PostgreSQL the lease starts when the statement writes the row, by the database's
        clock: time spent waiting for a pooled connection or a lock is not taken from it, so a
        claim is never committed already expired.
        """
        return {
            "status": target(self.move),
            "recipient": self.recipient,
            "recipient_hash": self.recipient_hash,
            "template_key": self.template_key,
            "batch_id": self.batch_id,
            "meta_data": self.values_meta_data(),
            "claim_expires_at": None if self.failure else self._lease_end(now, dialect),
            "failure_reason": self.failure,
            "failed_at": now if self.failure else None,
            "updated_at": now,
        }

    def values_meta_data(self) -> dict[str, Any]:
        """The interaction's ``meta_data``: the payload, and the sender when one is named."""
        meta: dict[str, Any] = {"payload": self.payload}
        if self.reply_to_id is not None:
            meta["reply_to_id"] = self.reply_to_id
        return meta

    def _lease_end(self, now: datetime, dialect: str) -> Any:
        lease = timedelta(seconds=self.lease_seconds)
        if dialect == "postgresql":
            return sa.func.clock_timestamp() + sa.literal(lease, sa.Interval())
        return now + lease


def event_values(
    interaction_id: int | None,
    entry: Entry,
    kind: EventKind,
    from_status: InteractionStatus | None,
    to_status: InteractionStatus | None,
    outcome: Outcome | None,
    occurred_at: datetime,
    recorded_at: datetime,
) -> dict[str, Any]:
    """One event row: the single definition of what the history stores."""
    return {
        "interaction_id": interaction_id,
        "kind": kind,
        "from_status": from_status,
        "to_status": to_status,
        "outcome": outcome.value if outcome is not None else None,
        "source": entry.source,
        "actor": entry.actor,
        "attempt": entry.attempt,
        "provider": entry.provider,
        "provider_event_id": entry.provider_event_id,
        "reference": entry.reference,
        # SQL NULL, not the JSON null a bare None would store.
        "detail": entry.detail if entry.detail is not None else sa.null(),
        "reason": entry.reason,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
    }


def _append(session: Session, values: dict[str, Any]) -> None:
    """One INSERT, skipping the ORM's flush machinery: dispatch writes several per message."""
    session.execute(sa.insert(InteractionEvent).values(**values))


def _moved(
    session: Session,
    interaction_id: int,
    move: Move,
    entry: Entry,
    previous: InteractionStatus | None,
    now: datetime,
    occurred_at: datetime | None = None,
) -> None:
    """Record ``move`` as the table describes it; it happened at ``occurred_at``, or now."""
    edge = EDGES[move]
    when = occurred_at or now
    _append(
        session,
        event_values(
            interaction_id, entry, edge.kind, previous, edge.target, edge.outcome, when, now
        ),
    )


def _insert(session: Session) -> Any:
    """An INSERT into the interactions with the dialect's ON CONFLICT clause."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_TABLE)


def _insert_new(
    session: Session,
    key: tuple[uuid.UUID, str, str, ChannelType],
    attempts: int,
    values: dict[str, Any],
    now: datetime,
) -> int | None:
    """INSERT a new interaction unless its idempotency key exists; its id, or None."""
    interaction_uuid, customer_id, idempotency_key, channel = key
    inserted: int | None = session.execute(
        _insert(session)
        .values(
            interaction_uuid=interaction_uuid,
            customer_id=customer_id,
            idempotency_key=idempotency_key,
            channel=channel,
            attempt_count=attempts,
            created_at=now,
            **values,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_TABLE.id)
    ).scalar_one_or_none()
    return inserted


def open_attempt(
    session: Session,
    interaction_uuid: uuid.UUID,
    customer_id: str,
    idempotency_key: str,
    channel: ChannelType,
    attempt: Attempt,
    now: datetime,
    source: str,
) -> int | None:
    """Create the interaction with its first attempt; None when the key is already taken."""
    values = attempt.values(now, session.get_bind().dialect.name)
    key = (interaction_uuid, customer_id, idempotency_key, channel)
    inserted = _insert_new(session, key, 1, values, now)
    if inserted is not None:
        _moved(session, inserted, attempt.move, _attempt_entry(attempt, 1, source), None, now)
    return inserted


# Where the dispatch's two one-statement writes run: in a session's transaction, or each alone
# on the thread's own connection to the engine (the worker's happy path, no session at all).
Target = Session | sa.Engine


def _dialect(on: Target) -> str:
    return on.dialect.name if isinstance(on, sa.Engine) else on.get_bind().dialect.name


def _run(
    on: Target, statement: statements.Prepared, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if isinstance(on, sa.Engine):
        return statement.rows_alone(on, params)
    return statement.rows(on.connection(), params)


def open_first_attempt(
    on: Target,
    interaction_uuid: uuid.UUID,
    customer_id: str,
    idempotency_key: str,
    channel: ChannelType,
    attempt: Attempt,
    now: datetime,
    source: str,
    suppression_hash: str | None,
) -> int | None:
    """On PostgreSQL, ``open_attempt`` for an attempt to send in one round trip; else None.

    The address is checked against the suppression list in the same statement when
    ``suppression_hash`` is given. None (the key is taken, the address suppressed, or another
    dialect) leaves the caller to take the general path, which says which it was.
    """
    if attempt.failure is not None or _dialect(on) != "postgresql":
        return None
    edge = EDGES[attempt.move]
    params = _new_row_params(interaction_uuid, customer_id, idempotency_key, channel, attempt, now)
    params.update(
        status=edge.target,
        kind=edge.kind,
        lease_seconds=attempt.lease_seconds,
        suppression_hash=suppression_hash,
        source=source,
    )
    rows = _run(on, statements.first_attempt, params)
    inserted: int | None = rows[0]["id"] if rows else None
    return inserted


def take_over(
    session: Session,
    interaction_id: int,
    previous: InteractionStatus,
    attempt_count: int,
    attempt: Attempt,
    now: datetime,
    source: str,
) -> bool:
    """Start attempt ``attempt_count + 1`` on an interaction nobody holds; False if one does."""
    if not allows(attempt.move, previous):
        return False
    taken = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.id == interaction_id,
            _TABLE.status.in_(sources(attempt.move)),
            # The status read is pinned too, so the event says what the attempt took over.
            _TABLE.status == previous,
            _TABLE.attempt_count == attempt_count,
            _TABLE.claim_expires_at.is_(None),
        )
        .values(
            attempt_count=attempt_count + 1,
            **attempt.values(now, session.get_bind().dialect.name),
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    entry = _attempt_entry(attempt, attempt_count + 1, source)
    _moved(session, interaction_id, attempt.move, entry, previous, now)
    return True


def _attempt_entry(attempt: Attempt, number: int, source: str) -> Entry:
    """The event fields of attempt ``number``, with why it failed before sending, if it did."""
    detail = {"failure_reason": attempt.failure} if attempt.failure else None
    return Entry(source, attempt=number, detail=detail)


def release(
    session: Session, interaction_id: int, attempt: int, reason: str, now: datetime, source: str
) -> bool:
    """Give a held claim back for a later attempt; True when attempt ``attempt`` still held it."""
    released = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.id == interaction_id,
            _TABLE.status.in_(sources(Move.RELEASE)),
            _TABLE.attempt_count == attempt,
            _TABLE.claim_expires_at.is_not(None),
        )
        .values(claim_expires_at=None, failure_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        return False
    entry = Entry(source, attempt=attempt, detail={"reason": reason})
    _moved(session, interaction_id, Move.RELEASE, entry, InteractionStatus.PENDING, now)
    return True


def give_up(
    session: Session, row: CustomerInteraction, reason: str, now: datetime, source: str
) -> bool:
    """Mark a released attempt (``row``, locked) FAILED; False when it moved on."""
    if not allows(Move.GIVE_UP, row.status) or row.claim_expires_at:
        return False
    previous = row.status
    _set(row, _move_values(target(Move.GIVE_UP), now, reason))
    entry = Entry(
        source, attempt=row.attempt_count, provider=row.provider, detail={"failure_reason": reason}
    )
    _moved(session, row.id, Move.GIVE_UP, entry, previous, now)
    return True


def _move_values(
    requested: InteractionStatus, when: datetime, failure: str | None
) -> dict[str, Any]:
    """The columns a move to ``requested`` sets, besides any the caller adds."""
    values: dict[str, Any] = {
        "status": requested,
        "claim_expires_at": None,
        _TIMESTAMP[requested]: when,
    }
    if requested is InteractionStatus.FAILED:
        values["failure_reason"] = failure or PROVIDER_FAILED
    return values


def _set(row: CustomerInteraction, values: dict[str, Any]) -> None:
    """Change a locked row's columns; the session writes them with its next flush."""
    for name, value in values.items():
        setattr(row, name, value)


def report(
    session: Session,
    row: CustomerInteraction,
    requested: InteractionStatus,
    when: datetime,
    now: datetime,
    entry: Entry,
    kind: EventKind = EventKind.STATUS_CHANGED,
    failure: str | None = None,
) -> Transition:
    """Apply a report of ``requested`` to ``row`` (locked) by the table, and record it as ``kind``.

    ``failure`` is why a FAILED report failed, kept on the interaction when the report applies.
    """
    previous = row.status
    transition = decide(previous, requested)
    if transition.changes:
        _set(row, _move_values(requested, when, failure))
        if requested is InteractionStatus.OPENED and row.delivered_at is None:
            row.delivered_at = when
    values = event_values(
        row.id,
        entry,
        kind,
        previous,
        requested,
        transition.outcome,
        when,
        now,
    )
    _append(session, values)
    return transition


def report_orphan(
    session: Session, requested: InteractionStatus, when: datetime, now: datetime, entry: Entry
) -> None:
    """Keep a report whose reference matched no interaction, for reconciliation to match."""
    values = event_values(
        None,
        entry,
        EventKind.PROVIDER_EVENT,
        None,
        requested,
        Outcome.UNKNOWN_REFERENCE,
        when,
        now,
    )
    _append(session, values)


def _locked(session: Session, interaction_id: int) -> CustomerInteraction:
    """The interaction, locked for the rest of the transaction."""
    return session.execute(
        sa.select(_TABLE).where(_TABLE.id == interaction_id).with_for_update()
    ).scalar_one()


def record_sent(
    session: Session,
    interaction_id: int,
    interaction_uuid: uuid.UUID,
    attempt: int,
    receipt: SendReceipt,
    now: datetime,
    source: str,
) -> CustomerInteraction:
    """Record that the provider accepted attempt ``attempt``; a callback may have gone further."""
    accepted: dict[str, Any] = {
        "provider": receipt.provider,
        "notify_reference": str(interaction_uuid),
        "claim_expires_at": None,
        "failure_reason": None,
    }
    if receipt.body is not None:
        # Bound through the column's type so the body is sealed like any other write.
        accepted["body_content"] = receipt.body
    if receipt.subject is not None:
        accepted["subject"] = receipt.subject
    requested = InteractionStatus.SENT
    # The usual case in one statement: the report applies, so no lock and no second read.
    updated = session.scalars(
        sa.update(_TABLE)
        .where(_TABLE.id == interaction_id, _TABLE.status.in_(reported_from(requested)))
        .values(
            {
                **accepted,
                **_move_values(requested, now, None),
                "provider_reference": sa.func.coalesce(
                    _TABLE.provider_reference, receipt.provider_reference
                ),
                "updated_at": now,
            }
        )
        .returning(_TABLE)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    entry = Entry(source, attempt=attempt, provider=receipt.provider)
    if updated is not None:
        # An UPDATE cannot return the status it replaced; only one status moves on to SENT.
        (previous,) = reported_from(requested)
        values = event_values(
            interaction_id,
            entry,
            EventKind.STATUS_CHANGED,
            previous,
            requested,
            Outcome.APPLIED,
            now,
            now,
        )
        _append(session, values)
        return updated
    # A provider callback got there first: decide under the row lock.
    row = _locked(session, interaction_id)
    _set(row, accepted)
    row.provider_reference = row.provider_reference or receipt.provider_reference
    row.sent_at = row.sent_at or now
    report(session, row, requested, now, now, entry)
    return row


def record_sent_first(
    on: Target,
    interaction_id: int,
    interaction_uuid: uuid.UUID,
    attempt: int,
    receipt: SendReceipt,
    now: datetime,
    source: str,
) -> dict[str, Any] | None:
    """On PostgreSQL, SENT and its event in one round trip: the record's columns, else None.

    None (a callback moved the row first, or another dialect) leaves ``record_sent`` to decide
    under the row lock. The sealed columns are not read back.
    """
    if _dialect(on) != "postgresql":
        return None
    requested = InteractionStatus.SENT
    (previous,) = reported_from(requested)
    rows = _run(
        on,
        statements.sent,
        {
            "interaction_id": interaction_id,
            "status": requested,
            "from_status": previous,
            "provider": receipt.provider,
            "notify_reference": str(interaction_uuid),
            "body_content": receipt.body,
            "subject": receipt.subject,
            "provider_reference": receipt.provider_reference,
            "now": now,
            "kind": EventKind.STATUS_CHANGED,
            "outcome": Outcome.APPLIED.value,
            "source": source,
            "attempt": attempt,
        },
    )
    return rows[0] if rows else None


def record_failed(
    session: Session, interaction_id: int, attempt: int, reason: str, now: datetime, source: str
) -> CustomerInteraction:
    """Record that the provider refused attempt ``attempt`` for good."""
    row = _locked(session, interaction_id)
    row.claim_expires_at = None
    detail = {"failure_reason": reason}
    entry = Entry(source, attempt=attempt, provider=row.provider, detail=detail)
    report(session, row, InteractionStatus.FAILED, now, now, entry, failure=reason)
    return row


def request_resend(
    session: Session, row: CustomerInteraction, move: Move, entry: Entry, now: datetime
) -> None:
    """Record staff asking to send ``row`` (locked) again; a RESEND makes it PENDING, unclaimed.

    PENDING with no claim lets the dispatch claim take the row over for one new attempt, and
    a second resend finds it no longer FAILED.
    """
    if not allows(move, row.status):
        raise ValueError(f"{move} cannot start from {row.status}")
    previous = row.status
    edge = EDGES[move]
    if edge.target is not None:
        row.status = edge.target
        row.claim_expires_at = None
        row.updated_at = now
    _moved(session, row.id, move, entry, previous, now)


def undo_resend(
    session: Session, interaction_id: int, attempt: int, entry: Entry, now: datetime
) -> bool:
    """Put a resend that was never queued back to FAILED; False when a dispatch took it."""
    reverted = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.id == interaction_id,
            _TABLE.status.in_(sources(Move.UNDO_RESEND)),
            _TABLE.claim_expires_at.is_(None),
            _TABLE.attempt_count == attempt,
        )
        .values(status=target(Move.UNDO_RESEND), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if reverted.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _moved(session, interaction_id, Move.UNDO_RESEND, entry, InteractionStatus.PENDING, now)
    return True


def add_note(
    session: Session,
    customer_id: str,
    content: str,
    author: str,
    when: datetime,
    now: datetime,
    source: str,
) -> CustomerInteraction:
    """Create the interaction a phone call (or any manual notation) is, as it happened."""
    interaction_uuid = uuid.uuid4()
    row = CustomerInteraction(
        interaction_uuid=interaction_uuid,
        customer_id=customer_id,
        idempotency_key=f"note:{interaction_uuid}",
        channel=ChannelType.PHONE,
        status=target(Move.NOTE),
        body_content=content,
        author=author,
        attempt_count=0,
        created_at=when,
        updated_at=now,
        delivered_at=when,
    )
    session.add(row)
    session.flush()
    _moved(session, row.id, Move.NOTE, Entry(source, actor=author), None, now, occurred_at=when)
    return row


def accept(
    session: Session,
    interaction_uuid: uuid.UUID,
    customer_id: str,
    idempotency_key: str,
    channel: ChannelType,
    attempt: Attempt,
    now: datetime,
    entry: Entry,
) -> int | None:
    """Create the interaction PENDING and unclaimed, for a dispatch to take over; None if taken.

    No lease and no attempt yet: the dispatch's claim finds a released row and takes it over
    as attempt 1, so the caller can be answered with the uuid before anything is sent.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _accept_in_one(
            session, interaction_uuid, customer_id, idempotency_key, channel, attempt, now, entry
        )
    values = attempt.values(now, dialect)
    values.update(status=target(Move.ACCEPT), claim_expires_at=None)
    key = (interaction_uuid, customer_id, idempotency_key, channel)
    inserted = _insert_new(session, key, 0, values, now)
    if inserted is not None:
        _moved(session, inserted, Move.ACCEPT, entry, None, now)
    return inserted


def _accept_in_one(
    session: Session,
    interaction_uuid: uuid.UUID,
    customer_id: str,
    idempotency_key: str,
    channel: ChannelType,
    attempt: Attempt,
    now: datetime,
    entry: Entry,
) -> int | None:
    """``accept`` on PostgreSQL: the row and its event in one round trip, the same values."""
    edge = EDGES[Move.ACCEPT]
    params = _new_row_params(interaction_uuid, customer_id, idempotency_key, channel, attempt, now)
    params.update(
        status=edge.target,
        kind=edge.kind,
        outcome=edge.outcome.value if edge.outcome is not None else None,
        source=entry.source,
        actor=entry.actor,
    )
    rows = _run(session, statements.accepted, params)
    inserted: int | None = rows[0]["id"] if rows else None
    return inserted


def _new_row_params(
    interaction_uuid: uuid.UUID,
    customer_id: str,
    idempotency_key: str,
    channel: ChannelType,
    attempt: Attempt,
    now: datetime,
) -> dict[str, Any]:
    """The parameters every one-statement write of a new interaction binds alike."""
    return {
        "interaction_uuid": interaction_uuid,
        "customer_id": customer_id,
        "idempotency_key": idempotency_key,
        "channel": channel,
        "recipient": attempt.recipient,
        "recipient_hash": attempt.recipient_hash,
        "template_key": attempt.template_key,
        "batch_id": attempt.batch_id,
        "meta_data": attempt.values_meta_data(),
        "now": now,
    }


def mark_outcome_unknown(session: Session, interaction_id: int, now: datetime, source: str) -> bool:
    """Say the provider never told what became of a SENT message; False if it is known now."""
    marked = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.id == interaction_id,
            _TABLE.status.in_(sources(Move.MARK_UNKNOWN)),
            _TABLE.outcome_unknown_at.is_(None),
        )
        .values(outcome_unknown_at=now)
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _moved(session, interaction_id, Move.MARK_UNKNOWN, Entry(source), InteractionStatus.SENT, now)
    return True
