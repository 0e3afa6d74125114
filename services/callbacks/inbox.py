"""The webhook inbox: callbacks stored before they are acknowledged, then applied once.

A callback is acknowledged only after its row is committed, so a 2xx never covers an event
that could be lost; applying it is a separate step that can be retried, and an event whose
interaction is not known yet waits as an orphan until reconciliation matches it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from models.inbound import InboundEvent, InboundState
from models.session import SessionFactory
from services.callbacks import status_events
from services.callbacks.parsing import MalformedCallback, ParsedCallback, parse
from services.ledger.transitions import Outcome


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


def apply(sessions: SessionFactory, inbound_id: int, final: bool, now: datetime) -> Outcome:
    """Apply a stored callback; UNKNOWN_REFERENCE means try later, unless ``final``."""
    with sessions() as session:
        row = session.get(InboundEvent, inbound_id)
        if row is None or row.state in (InboundState.APPLIED, InboundState.REJECTED):
            return Outcome.DUPLICATE
        provider, event_id, body = row.provider, row.event_id, row.body
    outcome, state = _apply_body(sessions, provider, event_id, body, final, now)
    with sessions() as session, session.begin():
        session.execute(_settle_statement(inbound_id, state, outcome, now))
    return outcome


def _apply_body(
    sessions: SessionFactory, provider: str, event_id: str, body: str, final: bool, now: datetime
) -> tuple[Outcome, InboundState]:
    """Apply one stored body to its interaction: the outcome, and the inbox row's next state."""
    try:
        parsed = parse(provider, body.encode(), event_id)
    except MalformedCallback:
        return Outcome.STALE, InboundState.REJECTED
    update = status_events.apply(sessions, replace(parsed.event, keep_orphan=final), now)
    if update.outcome is not Outcome.UNKNOWN_REFERENCE:
        return update.outcome, InboundState.APPLIED
    return update.outcome, InboundState.ORPHAN if final else InboundState.RECEIVED


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
    locked (``FOR UPDATE SKIP LOCKED``, so two drains never take one row), each event is
    applied in a savepoint of it (a duplicate undoes only itself) and each row settled in it.
    A drain that dies leaves its batch as it was, for the next one; an event applied twice is
    recorded once. One connection per drain, however many drains run at once. A callback
    whose interaction is not known yet is handed to ``retry_alone`` once the batch is
    committed, which retries it with backoff and in the end keeps it as an orphan.
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
    with _transaction(bind) as connection:
        batch = connection.execute(fresh.with_for_update(skip_locked=True)).all()
        if len(batch) == limit:
            more()  # others may be waiting: another worker thread drains them meanwhile

        def joined() -> Session:
            return Session(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )

        for row in batch:
            outcome, state = _apply_body(joined, row.provider, row.event_id, row.body, False, now())
            connection.execute(_settle_statement(row.id, state, outcome, now()))
            if outcome is Outcome.UNKNOWN_REFERENCE:
                handed_on.append(row.id)
    for inbound_id in handed_on:
        retry_alone(inbound_id)
    return Drained(tuple(row.id for row in batch), tuple(handed_on))


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
        if apply(sessions, row.id, final=False, now=now()) is Outcome.UNKNOWN_REFERENCE:
            handed_on.append(row.id)
            retry_alone(row.id)
    return Drained(tuple(row.id for row in batch), tuple(handed_on))


def _settle_statement(
    inbound_id: int, state: InboundState, outcome: Outcome, now: datetime
) -> sa.Update:
    """Record an attempt at the inbox row: its state and outcome, and when it settled."""
    label = (Outcome.MALFORMED if state is InboundState.REJECTED else outcome).value
    settled_at = now if state in (InboundState.APPLIED, InboundState.REJECTED) else None
    return (
        sa.update(InboundEvent)
        .where(InboundEvent.id == inbound_id)
        .values(
            state=state,
            outcome=label,
            attempts=InboundEvent.attempts + 1,
            settled_at=settled_at,
        )
    )


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
