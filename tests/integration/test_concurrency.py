"""Concurrent dispatches of one key on PostgreSQL: the database is the lock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from config.settings import Settings
from models import CustomerInteraction
from providers.registry import ProviderRegistry
from services.communication import CommunicationService
from services.records import DispatchOutcome
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
