"""Concurrent dispatches of one key on PostgreSQL: the database is the lock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models import CustomerInteraction
from providers.registry import ProviderRegistry
from services.records import DispatchOutcome
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.fakes import FakeProvider


def test_twenty_threads_one_key_one_provider_call(
    committed_pg: Database, test_settings: Settings
) -> None:
    provider = FakeProvider(delay=0.05)
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings
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
    committed_pg: Database, test_settings: Settings
) -> None:
    provider = FakeProvider(delay=0.05)
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings
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
    committed_pg: Database, test_settings: Settings, pg_engine: sa.engine.Engine
) -> None:
    provider = FakeProvider()
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings
    )
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
