"""The webhook inbox: callbacks stored before they are acknowledged, then applied once.

A callback is acknowledged only after its row is committed, so a 2xx never covers an event
that could be lost; applying it is a separate step that can be retried, and an event whose
interaction is not known yet waits as an orphan until reconciliation matches it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from models.inbound import InboundEvent, InboundState
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from services.callbacks import status_events
from services.callbacks.failures import Cause, cause_of, reason_for
from services.callbacks.parsing import MalformedCallback, ParsedCallback, parse
from services.ledger.transitions import Outcome
from telemetry import metrics


class Receipt(enum.StrEnum):
    """What storing a callback found."""

    NEW = "new"
    UNSETTLED = "unsettled"
    ALREADY_SETTLED = "already_settled"


@dataclass(frozen=True)
class Stored:
    """The inbox row a callback is in, and whether it still needs applying."""

    inbound_id: int
    receipt: Receipt

    @property
    def needs_applying(self) -> bool:
        """A settled event was applied before; a replay must not enqueue it again."""
        return self.receipt is not Receipt.ALREADY_SETTLED


_TABLE: sa.Table = InboundEvent.__table__  # type: ignore[assignment]


@functools.cache
def _insert_statement(dialect: str) -> Any:
    """The inbox insert, built once per dialect: the webhook runs it for every callback."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_TABLE)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(_TABLE.c.id)
    )


@functools.cache
def _existing_statement() -> sa.Select[tuple[int, InboundState]]:
    return sa.select(_TABLE.c.id, _TABLE.c.state).where(
        _TABLE.c.provider == sa.bindparam("provider"),
        _TABLE.c.event_id == sa.bindparam("event_id"),
    )


def store(
    sessions: SessionFactory, provider: str, parsed: ParsedCallback, body: bytes, now: datetime
) -> Stored:
    """Commit the raw callback, once per (provider, event id).

    Core statements on the session's connection, not the ORM: this is the webhook's whole
    database cost, paid once per callback.
    """
    row = {
        "provider": provider,
        "event_id": parsed.event_id,
        "body": body.decode("utf-8"),
        "state": InboundState.RECEIVED,
        "attempts": 0,
        "received_at": now,
    }
    with sessions() as session, session.begin():
        connection = session.connection()
        statement = _insert_statement(connection.dialect.name)
        inserted = connection.execute(statement, row).scalar_one_or_none()
        if inserted is not None:
            return Stored(inserted, Receipt.NEW)
        existing = connection.execute(
            _existing_statement(), {"provider": provider, "event_id": parsed.event_id}
        ).one()
    settled = existing.state in (InboundState.APPLIED, InboundState.REJECTED)
    return Stored(existing.id, Receipt.ALREADY_SETTLED if settled else Receipt.UNSETTLED)


@dataclass(frozen=True)
class Settlement:
    """What one attempt at a stored callback came to: its outcome, the row's next state, why."""

    outcome: Outcome
    state: InboundState
    reason: str | None = None
    cause: Cause | None = None


def apply(sessions: SessionFactory, inbound_id: int, final: bool, now: datetime) -> Outcome:
    """Apply a stored callback; UNKNOWN_REFERENCE means try later, unless ``final``.

    A content error settles the row as rejected; a transient error is raised for a retry, and
    so is an unexpected one until ``final``, when the row is settled as rejected with its class.
    """
    with sessions() as session:
        row = session.get(InboundEvent, inbound_id)
        if row is None or row.state in (InboundState.APPLIED, InboundState.REJECTED):
            return Outcome.DUPLICATE
        provider, event_id, body = row.provider, row.event_id, row.body
    try:
        settlement = _apply_body(sessions, provider, event_id, body, final, now)
    except Exception as exc:  # sorted by cause: only a content error or a last try settles
        settlement = _settle_failure(exc, final)
    with sessions() as session, session.begin():
        session.execute(_settle_statement(inbound_id, settlement, now))
    _count_rejected(provider, settlement)
    return settlement.outcome


def _settle_failure(exc: Exception, final: bool) -> Settlement:
    """The rejection ``exc`` earns, or ``exc`` raised again when a retry may succeed."""
    cause = cause_of(exc)
    if cause is Cause.TRANSIENT or (cause is Cause.UNEXPECTED and not final):
        raise exc
    return Settlement(Outcome.MALFORMED, InboundState.REJECTED, reason_for(exc), cause)


def _count_rejected(provider: str, settlement: Settlement) -> None:
    if settlement.state is InboundState.REJECTED and settlement.cause is not None:
        metrics.callback_rejected(provider, settlement.cause.value)


def _apply_body(
    sessions: SessionFactory, provider: str, event_id: str, body: str, final: bool, now: datetime
) -> Settlement:
    """Apply one stored body to its interaction: the outcome, and the inbox row's next state."""
    parsed = parse(provider, body.encode(), event_id)
    update = status_events.apply(sessions, replace(parsed.event, keep_orphan=final), now)
    if update.outcome is not Outcome.UNKNOWN_REFERENCE:
        return Settlement(update.outcome, InboundState.APPLIED)
    return Settlement(update.outcome, InboundState.ORPHAN if final else InboundState.RECEIVED)


@dataclass(frozen=True)
class Drained:
    """What one drain did: the callbacks it took, and those handed on to be retried alone."""

    taken: tuple[int, ...]
    handed_on: tuple[int, ...]

    @property
    def applied(self) -> int:
        """Callbacks settled by this drain."""
        return len(self.taken) - len(self.handed_on)


def drain(
    sessions: SessionFactory,
    limit: int,
    more: Callable[[], None],
    retry_alone: Callable[[int], None],
    now: Callable[[], datetime],
) -> Drained:
    """Apply up to ``limit`` untried callbacks, oldest first; ``more()`` when the batch was full.

    On PostgreSQL the whole batch is one transaction on one connection: the inbox rows are
    locked (``FOR UPDATE SKIP LOCKED``, so two drains never take one row), then the
    interactions they name, in id order, so two drains wait for each other instead of
    deadlocking; each event is applied in a savepoint of its own and its row settled. An event
    whose content cannot be applied is settled as rejected alone; a transient error (deadlock,
    serialization, lost connection) rolls the batch back for a retry; an unexpected one hands
    the event on. A callback whose interaction is not known yet is handed to ``retry_alone``
    once the batch is committed, which retries it with backoff and in the end keeps it as an
    orphan.
    """
    fresh = (
        sa.select(_TABLE.c.id, _TABLE.c.provider, _TABLE.c.event_id, _TABLE.c.body)
        .where(_TABLE.c.state == InboundState.RECEIVED, _TABLE.c.attempts == 0)
        .order_by(_TABLE.c.received_at, _TABLE.c.id)
        .limit(limit)
    )
    with sessions() as probe:
        bind = probe.get_bind()
    if bind.dialect.name != "postgresql":
        # SQLite (the embedded default) has no row locks and one writer at a time: the
        # batch is read, then each callback applied and settled on its own.
        with sessions() as session:
            batch = session.execute(fresh).all()
        return _drain_unlocked(sessions, batch, limit, more, retry_alone, now)
    handed_on: list[int] = []
    rejected: list[tuple[str, Settlement]] = []
    with _transaction(bind) as connection:
        batch = connection.execute(fresh.with_for_update(skip_locked=True)).all()
        if len(batch) == limit:
            more()  # others may be waiting: another worker thread drains them meanwhile
        _lock_interactions(connection, batch)

        def joined() -> Session:
            return Session(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )

        for row in batch:
            applied_at = now()
            try:
                with connection.begin_nested():
                    settlement = _apply_body(
                        joined, row.provider, row.event_id, row.body, False, applied_at
                    )
            except Exception as exc:  # sorted by cause: transient ones roll the batch back
                if cause_of(exc) is Cause.UNEXPECTED:
                    connection.execute(_tried_statement(row.id))
                    handed_on.append(row.id)
                    continue
                settlement = _settle_failure(exc, final=False)
            connection.execute(_settle_statement(row.id, settlement, now()))
            if settlement.outcome is Outcome.UNKNOWN_REFERENCE:
                handed_on.append(row.id)
            rejected.append((row.provider, settlement))
    for provider, settlement in rejected:
        _count_rejected(provider, settlement)
    for inbound_id in handed_on:
        retry_alone(inbound_id)
    return Drained(tuple(row.id for row in batch), tuple(handed_on))


def _lock_interactions(connection: Connection, batch: Sequence[Any]) -> None:
    """Lock every interaction the batch names, in id order: concurrent drains never deadlock."""
    references: set[str] = set()
    uuids: set[uuid.UUID] = set()
    for row in batch:
        try:
            event = parse(row.provider, row.body.encode(), row.event_id).event
        except MalformedCallback:
            continue  # rejected when its turn comes
        references.add(event.reference)
        for candidate in (event.own_reference, event.reference):
            with contextlib.suppress(ValueError):
                uuids.add(uuid.UUID(candidate or ""))
    if not references:
        return
    table = CustomerInteraction
    connection.execute(
        sa.select(table.id)
        .where(sa.or_(table.provider_reference.in_(references), table.interaction_uuid.in_(uuids)))
        .order_by(table.id)
        .with_for_update()
    )


@contextlib.contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction on a connection of its own; nested when ``bind`` already is one."""
    if isinstance(bind, Connection):
        with bind.begin_nested():
            yield bind
        return
    with bind.connect() as connection, connection.begin():
        yield connection


def _drain_unlocked(
    sessions: SessionFactory,
    batch: Sequence[Any],
    limit: int,
    more: Callable[[], None],
    retry_alone: Callable[[int], None],
    now: Callable[[], datetime],
) -> Drained:
    if len(batch) == limit:
        more()
    handed_on: list[int] = []
    for row in batch:
        try:
            outcome = apply(sessions, row.id, final=False, now=now())
        except Exception as exc:  # only an unexpected error is handed on; others go up
            if cause_of(exc) is not Cause.UNEXPECTED:
                raise
            with sessions() as session, session.begin():
                session.execute(_tried_statement(row.id))
            outcome = Outcome.UNKNOWN_REFERENCE
        if outcome is Outcome.UNKNOWN_REFERENCE:
            handed_on.append(row.id)
            retry_alone(row.id)
    return Drained(tuple(row.id for row in batch), tuple(handed_on))


def _settle_statement(inbound_id: int, settlement: Settlement, now: datetime) -> sa.Update:
    """Record an attempt at the inbox row: its state and outcome, and when it settled."""
    state = settlement.state
    label = (Outcome.MALFORMED if state is InboundState.REJECTED else settlement.outcome).value
    settled_at = now if state in (InboundState.APPLIED, InboundState.REJECTED) else None
    return (
        sa.update(InboundEvent)
        .where(InboundEvent.id == inbound_id)
        .values(
            state=state,
            outcome=label,
            reason=settlement.reason,
            attempts=InboundEvent.attempts + 1,
            settled_at=settled_at,
        )
    )


def _tried_statement(inbound_id: int) -> sa.Update:
    """Count an attempt that settled nothing: the row waits for its retry alone, not a drain."""
    return (
        sa.update(InboundEvent)
        .where(InboundEvent.id == inbound_id)
        .values(attempts=InboundEvent.attempts + 1)
    )


def rejected_count(sessions: SessionFactory) -> int:
    """How many stored callbacks were settled as rejected (kept, never applied)."""
    with sessions() as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(InboundEvent)
            .where(InboundEvent.state == InboundState.REJECTED)
        )
    return int(count or 0)


def unsettled(
    sessions: SessionFactory, older_than: timedelta, now: datetime, limit: int
) -> list[int]:
    """Orphans, and received events nobody applied (a lost task), oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(InboundEvent.id)
                .where(
                    InboundEvent.state.in_([InboundState.RECEIVED, InboundState.ORPHAN]),
                    InboundEvent.received_at < now - older_than,
                )
                .order_by(InboundEvent.received_at)
                .limit(limit)
            )
        )
