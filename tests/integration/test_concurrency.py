"""Concurrent dispatches of one key on PostgreSQL: the database is the lock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models import CustomerInteraction
from models.base import utcnow
from models.enums import ChannelType
from models.event import InteractionEvent
from providers.registry import ProviderRegistry
from services.errors import InvalidInput
from services.ledger.statements import ThreadConnections
from services.records import DispatchOutcome
from services.sending import suppression
from services.sending.communication import CommunicationService
from services.sending.reconciliation import Reconciler
from services.sending.validation import recipient_index
from tests.conftest import Database
from tests.fakes import FakeProvider


@pytest.fixture(params=["in sessions", "alone"])
def alone(request: pytest.FixtureRequest, pg_engine: sa.engine.Engine) -> sa.engine.Engine | None:
    """The dispatch's usual writes in sessions, or each alone on a pooled connection (workers)."""
    return pg_engine if request.param == "alone" else None


@pytest.fixture
def service_alone(
    committed_pg: Database, test_settings: Settings, pg_engine: sa.engine.Engine
) -> CommunicationService:
    """The worker's service: its usual writes each alone on the thread's own connection."""
    return CommunicationService(
        committed_pg.sessions,
        ProviderRegistry.single(FakeProvider()),
        test_settings,
        alone=pg_engine,
    )


def test_twenty_threads_one_key_one_provider_call(
    committed_pg: Database, test_settings: Settings, alone: sa.engine.Engine | None
) -> None:
    provider = FakeProvider(delay=0.05)
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings, alone=alone
    )
    start = threading.Barrier(20)

    def racer(_: int) -> DispatchOutcome:
        start.wait()
        return service.dispatch(
            "C-1", "email", "welcome", {}, "race-key", "ada@example.org"
        ).outcome

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(racer, range(20)))

    assert provider.call_count == 1
    assert outcomes.count(DispatchOutcome.SENT) == 1
    assert set(outcomes) <= {
        DispatchOutcome.SENT,
        DispatchOutcome.IN_FLIGHT,
        DispatchOutcome.ALREADY_SENT,
    }
    with committed_pg.sessions() as session:
        rows = session.scalars(sa.select(CustomerInteraction)).all()
    assert [(r.idempotency_key, r.status.value, r.attempt_count) for r in rows] == [
        ("race-key", "sent", 1)
    ]


def test_twenty_threads_retrying_one_failed_key_start_one_attempt(
    committed_pg: Database, test_settings: Settings, alone: sa.engine.Engine | None
) -> None:
    provider = FakeProvider(delay=0.05)
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings, alone=alone
    )
    provider.fail_next(provider.permanent())
    service.dispatch("C-1", "email", "welcome", {}, "retry-key", "ada@example.org")
    start = threading.Barrier(20)

    def racer(_: int) -> DispatchOutcome:
        start.wait()
        return service.dispatch(
            "C-1", "email", "welcome", {}, "retry-key", "ada@example.org"
        ).outcome

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(racer, range(20)))
    assert provider.call_count == 2
    assert outcomes.count(DispatchOutcome.SENT) == 1
    with committed_pg.sessions() as session:
        row = session.scalars(sa.select(CustomerInteraction)).one()
    assert (row.status.value, row.attempt_count) == ("sent", 2)


def test_a_dead_database_connection_is_a_clear_error_and_loses_nothing(
    committed_pg: Database,
    test_settings: Settings,
    pg_engine: sa.engine.Engine,
    alone: sa.engine.Engine | None,
) -> None:
    provider = FakeProvider()
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings, alone=alone
    )
    # Every pooled connection from here on: one an earlier test's outage marked stale would be
    # replaced on checkout, and the statement would never meet the dead one.
    pg_engine.dispose()
    service.dispatch("C-1", "email", "welcome", {}, "before", "ada@example.org")
    # The server ends every pooled connection, as a restart or failover does.
    admin = sa.create_engine(pg_engine.url, poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    with pytest.raises(sa.exc.OperationalError):
        service.dispatch("C-1", "email", "welcome", {}, "during", "ada@example.org")
    retried = service.dispatch("C-1", "email", "welcome", {}, "during", "ada@example.org")
    assert retried.outcome is DispatchOutcome.SENT
    assert provider.call_count == 2
    with committed_pg.sessions() as session:
        keys = session.scalars(
            sa.select(CustomerInteraction.idempotency_key).order_by(CustomerInteraction.id)
        ).all()
    assert keys == ["before", "during"]


def test_a_claim_that_waited_on_a_lock_past_its_lease_is_not_released_while_it_sends(
    committed_pg: Database, test_settings: Settings, pg_engine: sa.engine.Engine
) -> None:
    lease = 2
    settings = test_settings.model_copy(
        update={"claim_lease_seconds": lease, "task_time_limit_seconds": 1}
    )
    provider = FakeProvider(delay=1.5)
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), settings
    )
    published: list[object] = []

    class Kept:
        def publish(self, messages: list[object]) -> None:
            published.extend(messages)

    reconciler = Reconciler(
        committed_pg.sessions, ProviderRegistry.single(provider), Kept(), settings, utcnow
    )
    with pg_engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE interactions IN SHARE MODE"))
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(
                service.dispatch, "C-1", "email", "welcome", {}, "locked-key", "ada@example.org"
            )
            time.sleep(lease + 1)  # the dispatch waits on the lock for longer than its lease
            holder.rollback()
            row = _wait_for_row(committed_pg, "locked-key")
            assert row.claim_expires_at is not None and row.claim_expires_at > utcnow()
            report = reconciler.run()  # while the provider call is still under way
            assert report.released == 0 and report.confirmed_sent == 0
            assert sending.result(timeout=10).outcome is DispatchOutcome.SENT
    assert provider.call_count == 1 and not published


def _wait_for_row(db: Database, key: str) -> CustomerInteraction:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with db.sessions() as session:
            row = session.scalars(
                sa.select(CustomerInteraction).where(CustomerInteraction.idempotency_key == key)
            ).one_or_none()
        if row is not None:
            return row
        time.sleep(0.02)
    raise AssertionError(f"{key} was never claimed")


def test_writes_alone_fall_back_to_sessions_for_every_unusual_case(
    committed_pg: Database, test_settings: Settings, pg_engine: sa.engine.Engine
) -> None:
    provider = FakeProvider()
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings, alone=pg_engine
    )
    with committed_pg.sessions() as session, session.begin():
        suppression.suppress(
            session,
            ChannelType.EMAIL,
            recipient_index(ChannelType.EMAIL, "gone@example.org"),
            utcnow(),
            30,
            reason=suppression.PERMANENT_FAILURE,
            source="test",
        )
    sent = service.dispatch("C-1", "email", "welcome", {}, "k-sent", "ada@example.org")
    again = service.dispatch("C-1", "email", "welcome", {}, "k-sent", "ada@example.org")
    suppressed = service.dispatch("C-1", "email", "welcome", {}, "k-gone", "gone@example.org")
    refused = service.dispatch("C-1", "email", "welcome", {}, "k-bad", "not an address")
    with pytest.raises(InvalidInput):
        service.dispatch("C-2", "email", "welcome", {}, "k-sent", "ada@example.org")

    assert (sent.outcome, again.outcome) == (DispatchOutcome.SENT, DispatchOutcome.ALREADY_SENT)
    assert sent.interaction.recipient == "ada@example.org"
    assert suppressed.outcome is refused.outcome is DispatchOutcome.FAILED
    assert provider.call_count == 1
    with committed_pg.sessions() as session:
        rows = session.scalars(sa.select(CustomerInteraction).order_by(CustomerInteraction.id))
        assert [(r.idempotency_key, r.status.value, r.recipient) for r in rows] == [
            ("k-sent", "sent", "ada@example.org"),
            ("k-gone", "failed", "gone@example.org"),
            ("k-bad", "failed", "not an address"),
        ]
        events = session.scalars(
            sa.select(InteractionEvent.kind).order_by(InteractionEvent.id)
        ).all()
    assert [kind.value for kind in events].count("attempt_started") == 3


def test_a_thread_keeps_one_connection_for_its_writes_alone_and_the_pool_keeps_its_own(
    service_alone: CommunicationService, pg_engine: sa.engine.Engine
) -> None:
    held = ThreadConnections.of(pg_engine)

    def send_and_say_backend(key: str) -> int:
        result = service_alone.dispatch("C-1", "email", "welcome", {}, key, "ada@example.org")
        assert result.outcome is DispatchOutcome.SENT
        backend: int = held.driver().get_backend_pid()
        return backend

    pg_engine.dispose()
    here = {send_and_say_backend(f"here-{n}") for n in range(5)}
    assert len(here) == 1, "one connection for every claim and SENT of this thread"
    assert pg_engine.pool.checkedout() == 0, "nothing held out of the pool between statements"
    with ThreadPoolExecutor(max_workers=1) as other:
        there = other.submit(send_and_say_backend, "there").result()
    assert there not in here, "each thread has its own"
    # Disposed of (or invalidated after a lost connection), the pool's age ends the thread's
    # connection too: the next statement opens a new one.
    pg_engine.dispose()
    assert send_and_say_backend("after") not in here
    # Closing the container closes every connection the engine's threads kept.
    kept = held.driver()
    ThreadConnections.close_all(pg_engine)
    assert kept.closed


def test_once_one_thread_meets_a_lost_connection_the_older_ones_are_replaced_before_use(
    service_alone: CommunicationService, pg_engine: sa.engine.Engine
) -> None:

    def send(key: str) -> None:
        service_alone.dispatch("C-1", "email", "welcome", {}, key, "ada@example.org")

    def thread_connection() -> Any:
        return ThreadConnections.of(pg_engine).driver()

    pg_engine.dispose()
    mine = thread_connection()
    with ThreadPoolExecutor(max_workers=1) as other:
        theirs = other.submit(thread_connection).result()
        # The server ends both (a restart); the other thread finds out first, and reconnects.
        admin = sa.create_engine(pg_engine.url, poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            for pid in (mine.get_backend_pid(), theirs.get_backend_pid()):
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        with pytest.raises(sa.exc.DBAPIError):
            other.submit(send, "theirs-lost").result()
        other.submit(send, "theirs-again").result()
        reconnected = other.submit(thread_connection).result()
        assert reconnected is not theirs
        # This thread's connection is older than the invalidation: replaced before it is
        # used, so its next message meets no error, and the other's new one is left alone.
        send("mine-after")
        assert thread_connection() is not mine
        assert other.submit(thread_connection).result() is reconnected
