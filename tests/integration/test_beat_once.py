"""A second beat started by mistake does no double work: each maintenance task takes a lock.

Covered: the reconciler, the poller and the janitor (archive_expired).

Two runs of each task start at the same moment in two threads, on separate PostgreSQL
connections (the advisory lock is per connection, as it is between two beat processes'
workers), while a slow provider keeps the first run busy: one does the work, one skips.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from config.settings import get_settings
from devtools.stub.server import StubNotifyServer
from models import CustomerInteraction, InteractionEvent
from models.base import utcnow
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from tasks.archive import archive_expired
from tasks.maintenance import poll_unfinished, reconcile_claims
from tests.archive_fixtures import archived_ids, build_world, clean, seed
from tests.conftest import PG_URL, Database
from tests.factories import send_email
from tests.stub_fixtures import TEMPLATES, TEST_API_KEY, notify_provider_for

ROWS = 4
LOOKUP_LATENCY_MS = 250


@pytest.fixture
def configured(
    committed_pg: Database, stub_notify: StubNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CommunicationService]:
    """The process settings point at the test database and the stub, as a worker's would."""
    values = {
        "INTERACTIONS_ENVIRONMENT": "test",
        "INTERACTIONS_DATABASE_URL": PG_URL,
        "INTERACTIONS_EMAIL_PROVIDER": "notify",
        "INTERACTIONS_NOTIFY_BASE_URL": stub_notify.url,
        "INTERACTIONS_NOTIFY_API_KEY": TEST_API_KEY,
        "INTERACTIONS_NOTIFY_TEMPLATES": json.dumps({"welcome": TEMPLATES["welcome"]}),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    provider = notify_provider_for(stub_notify)
    yield CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), get_settings()
    )
    get_settings.cache_clear()


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _twice_at_once(task: Callable[[], None]) -> None:
    start = threading.Barrier(2)

    def run(_: int) -> None:
        start.wait()
        task()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, range(2)))


def _events(db: Database, source: str) -> list[int]:
    with db.sessions() as session:
        return sorted(
            session.scalars(
                sa.select(InteractionEvent.interaction_id).where(InteractionEvent.source == source)
            )
        )


def test_two_reconcilers_at_once_settle_each_claim_once(
    configured: CommunicationService, committed_pg: Database, stub_notify: StubNotifyServer
) -> None:
    ids = [send_email(configured, f"C-{i}").interaction.id for i in range(ROWS)]
    # Each was sent, then its worker died before recording SENT: PENDING, lease run out.
    with committed_pg.sessions() as session, session.begin():
        session.execute(
            sa.update(CustomerInteraction)
            .where(CustomerInteraction.id.in_(ids))
            .values(status="pending", claim_expires_at=utcnow() - timedelta(minutes=1))
        )
    stub_notify.configure(latency_ms=LOOKUP_LATENCY_MS)
    lookups = _count(
        "interactions_provider_request_seconds_count", provider="notify", operation="lookup"
    )
    ran = _count("interactions_maintenance_runs_total", task="reconcile_claims", result="ran")
    skipped = _count(
        "interactions_maintenance_runs_total", task="reconcile_claims", result="skipped"
    )

    _twice_at_once(reconcile_claims)

    assert (
        _count("interactions_maintenance_runs_total", task="reconcile_claims", result="ran")
        == ran + 1
    )
    assert (
        _count("interactions_maintenance_runs_total", task="reconcile_claims", result="skipped")
        == skipped + 1
    )
    assert (
        _count("interactions_provider_request_seconds_count", provider="notify", operation="lookup")
        == lookups + ROWS
    ), "each claim was asked about once"
    assert _events(committed_pg, "reconciler") == sorted(ids), "each claim settled once"
    with committed_pg.sessions() as session:
        statuses = set(session.scalars(sa.select(CustomerInteraction.status)))
    assert statuses == {"sent"}
    assert stub_notify.stats()["total"] == ROWS, "nothing was sent again"


def test_two_pollers_at_once_ask_about_each_interaction_once(
    configured: CommunicationService, committed_pg: Database, stub_notify: StubNotifyServer
) -> None:
    ids = [send_email(configured, f"C-{i}").interaction.id for i in range(ROWS)]
    # Sent days ago and no final status came: the poller asks, then marks them unknown.
    with committed_pg.sessions() as session, session.begin():
        session.execute(
            sa.update(CustomerInteraction)
            .where(CustomerInteraction.id.in_(ids))
            .values(sent_at=utcnow() - timedelta(hours=80))
        )
    stub_notify.configure(latency_ms=LOOKUP_LATENCY_MS)
    skipped = _count(
        "interactions_maintenance_runs_total", task="poll_unfinished", result="skipped"
    )
    lookups = _count(
        "interactions_provider_request_seconds_count", provider="notify", operation="lookup"
    )

    _twice_at_once(poll_unfinished)

    assert (
        _count("interactions_maintenance_runs_total", task="poll_unfinished", result="skipped")
        == skipped + 1
    )
    assert (
        _count("interactions_provider_request_seconds_count", provider="notify", operation="lookup")
        == lookups + ROWS
    ), "each interaction was asked about once"
    polled = _events(committed_pg, "poll")
    assert sorted(set(polled)) == polled == sorted(ids), "each polled once, none twice"


def test_two_janitors_at_once_archive_each_row_once(
    pg_engine: sa.engine.Engine,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = build_world(pg_engine, "local", tmp_path, request, chunk_rows=10)
    long_ago = utcnow() - timedelta(days=3 * 365)
    ids = [
        seed(pg_engine, long_ago + timedelta(minutes=i), customer_id=f"C-{i}") for i in range(60)
    ]
    for name, value in {**world.env(), "INTERACTIONS_ENVIRONMENT": "test"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="tasks.archive"):
            _twice_at_once(archive_expired)
        skipped = [r for r in caplog.records if "holds the lock; skipped" in r.getMessage()]
        assert len(skipped) == 1, "one janitor ran, the other found the lock taken"
        assert sorted(archived_ids(world.store)) == sorted(ids), "every row archived, once"
        with pg_engine.connect() as connection:
            left = connection.scalar(sa.text("SELECT count(*) FROM interactions"))
        assert left == 0
    finally:
        get_settings.cache_clear()
        clean(pg_engine)
