"""Outages of the database and the broker under real workers: nothing lost, nothing sent twice.

The workers reach PostgreSQL or Redis through a TCP proxy that the test cuts and restores, so
the server the rest of the machine uses never stops. A database outage spends none of a
message's provider attempts; a broker that comes back empty loses no recipient.
"""

from __future__ import annotations

import os
import time

import pytest
import redis
import sqlalchemy as sa

from broker.app import create_app
from broker.epoch import BrokerEpoch
from broker.publisher import CeleryPublisher
from devtools.processes import wait_until
from devtools.tcp_proxy import TcpProxy
from models.base import utcnow
from providers.registry import ProviderRegistry
from services.sending.batches import BatchProducer, RecipientRow
from services.sending.reconciliation import Reconciler
from tests.e2e.conftest import BROKER, Pipeline

pytestmark = pytest.mark.e2e
# Long enough for several retries and reconnections; E2E_*_OUTAGE_SECONDS=60 the longer runs.
DATABASE_OUTAGE_SECONDS = float(os.environ.get("E2E_DATABASE_OUTAGE_SECONDS", "10"))
BROKER_OUTAGE_SECONDS = float(os.environ.get("E2E_BROKER_OUTAGE_SECONDS", "10"))


def _through(url: str, proxy: TcpProxy) -> str:
    parsed = (
        sa.engine.make_url(url) if "://" in url and "+" in url.split("://", maxsplit=1)[0] else None
    )
    if parsed is not None:
        return parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    scheme, rest = url.split("://", 1)
    database = rest.split("/", 1)[1] if "/" in rest else "0"
    return f"{scheme}://127.0.0.1:{proxy.port}/{database}"


def test_a_database_outage_leaves_every_provider_attempt_to_the_provider(
    pipeline: Pipeline,
) -> None:
    url = sa.engine.make_url(pipeline.settings.resolved_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        pipeline.settings = pipeline.settings.model_copy(
            update={"database_url": _through(pipeline.settings.resolved_database_url, proxy),
                    "dispatch_max_retries": 2}
        )  # fmt: skip
        pipeline.start_worker(concurrency=4)
        proxy.cut()
        pipeline.send_batch("db-outage", 10)  # the producer reaches the database directly
        time.sleep(DATABASE_OUTAGE_SECONDS)
        assert pipeline.stub.stats()["total"] == 0
        # Back, the provider now fails the first two sends it gets: each message may still
        # use both its retries, however many times it waited for the database.
        pipeline.stub.configure(fail_next=2, failure_status=503)
        proxy.restore()
        wait_until(lambda: pipeline.statuses("db-outage").get("sent") == 10, 180, "10 SENT")
    finally:
        proxy.stop()
    assert pipeline.statuses("db-outage") == {"sent": 10}
    receipts = pipeline.receipts()
    assert len(receipts) == 10 and set(receipts.values()) == {1}


def test_a_broker_that_comes_back_empty_loses_no_recipient(pipeline: Pipeline) -> None:
    proxy = TcpProxy("127.0.0.1", 6379)
    count = 300
    try:
        broker_url = _through(BROKER, proxy)
        pipeline.settings = pipeline.settings.model_copy(update={"broker_url": broker_url})
        pipeline.app = create_app(pipeline.settings)
        pipeline.publisher = CeleryPublisher(pipeline.app)
        epoch = BrokerEpoch(redis.Redis.from_url(broker_url, socket_timeout=2))
        pipeline.stub.configure(latency_ms=20)
        pipeline.start_worker(concurrency=8)
        rows = (
            RecipientRow(i + 1, f"C-{i}", f"person{i}@example.org", {"name": f"P {i}"})
            for i in range(count)
        )
        BatchProducer(pipeline.sessions, pipeline.publisher, pipeline.settings, epoch.current).run(
            "broker-loss", "email", "welcome", rows
        )
        wait_until(lambda: pipeline.stub.stats()["accepted"] >= 75, 60, "a start")
        proxy.cut()
        redis.Redis.from_url(BROKER).flushdb()  # Redis keeps nothing on disk: back, it is empty
        time.sleep(BROKER_OUTAGE_SECONDS)
        proxy.restore()
        reconciler = Reconciler(
            pipeline.sessions,
            ProviderRegistry.from_settings(pipeline.settings),
            pipeline.publisher,
            pipeline.settings,
            utcnow,
            epoch.current,
        )

        def finished() -> bool:
            if pipeline.statuses("broker-loss").get("sent") == count:
                return True
            reconciler.run()  # as beat does every minute
            return False

        wait_until(finished, 300, f"{count} SENT", every=5)
    finally:
        proxy.stop()
    receipts = pipeline.receipts()
    assert len(receipts) == count and set(receipts.values()) == {1}
    assert pipeline.statuses("broker-loss") == {"sent": count}
