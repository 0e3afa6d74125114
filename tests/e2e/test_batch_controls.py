"""Steering a batch under real workers: pause, resume, cancel, a scheduled start."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from broker.parking import ParkingLot
from devtools.processes import wait_until
from models import CustomerInteraction
from models.base import utcnow
from models.crypto import keyring
from providers.pacing import Unpaced
from providers.registry import ProviderRegistry
from services.sending.batch_control import BatchGate, change_state
from services.sending.batch_status import batch_status
from services.sending.batches import BatchProducer, RecipientRow
from services.sending.parking import batch_lot, release_batch, release_parked
from tests.e2e.conftest import BROKER, Pipeline

pytestmark = pytest.mark.e2e


def _gate(pipeline: Pipeline) -> BatchGate:
    return BatchGate(pipeline.sessions, redis.Redis.from_url(BROKER))


def _lots() -> ParkingLot:
    ring = keyring()
    return ParkingLot(
        redis.Redis.from_url(BROKER),
        lambda text: ring.seal(text, "parked.dispatch"),
        lambda sealed: ring.open(sealed, "parked.dispatch"),
    )


def _accepted(pipeline: Pipeline) -> int:
    return int(pipeline.stub.stats()["accepted"])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_paused_batch_stops_idles_and_resumes_exactly_once(pipeline: Pipeline) -> None:
    count = 600
    pipeline.stub.configure(latency_ms=5)
    worker = pipeline.start_worker()
    pipeline.send_batch("paused", count)
    wait_until(lambda: _accepted(pipeline) >= 150, 60, "a start")
    gate = _gate(pipeline)
    change_state(pipeline.sessions, gate, "paused", "pause", "ops", "wrong template")
    time.sleep(3)  # in-flight claims finish; the rest park
    stopped = _accepted(pipeline)
    assert stopped < count
    wait_until(lambda: _lots().count(batch_lot("paused")) >= count - stopped - 50, 60, "parking")
    pid = worker.process.pid
    before = _cpu_seconds(pid)
    time.sleep(5)
    assert _accepted(pipeline) == stopped, "nothing is sent while paused"
    assert (_cpu_seconds(pid) - before) / 5 < 0.05, "the worker idles while the batch is paused"
    assert pipeline.statuses("paused").get("failed", 0) == 0

    change_state(pipeline.sessions, gate, "paused", "resume", "ops", None)
    release_batch(_lots(), "paused", gate, pipeline.publisher)
    wait_until(lambda: pipeline.statuses("paused").get("sent") == count, 120, "the rest")
    receipts = pipeline.receipts()
    assert len(receipts) == count and set(receipts.values()) == {1}


def test_a_cancelled_batch_sends_nothing_more_and_adds_up(pipeline: Pipeline) -> None:
    count = 1000
    pipeline.stub.configure(latency_ms=5)
    pipeline.start_worker()
    pipeline.send_batch("cancelled", count)
    wait_until(lambda: _accepted(pipeline) >= 150, 60, "a start")
    change_state(pipeline.sessions, _gate(pipeline), "cancelled", "cancel", "ops", "recalled")
    time.sleep(3)  # claims in flight when the cancel came finish
    settled = _accepted(pipeline)
    time.sleep(5)
    assert _accepted(pipeline) == settled, "no send after the cancel took hold"
    status = batch_status(pipeline.sessions, "cancelled", utcnow())
    claimed = sum(status.by_status.values())
    sent = status.by_status.get("sent", 0)
    assert status.by_status.get("pending", 0) == 0
    assert sent + (count - claimed) == count and sent == settled
    with pytest.raises(Exception, match="cancelled"):
        pipeline.send_batch("cancelled", count)


def test_a_scheduled_batch_waits_for_its_time(pipeline: Pipeline) -> None:
    count = 200
    pipeline.start_worker()
    gate = _gate(pipeline)
    due = utcnow() + timedelta(seconds=10)
    rows = (RecipientRow(i + 1, f"C-{i}", f"p{i}@example.org", {}) for i in range(count))
    BatchProducer(pipeline.sessions, pipeline.publisher, pipeline.settings, gate=gate).run(
        "scheduled", "email", "welcome", rows, not_before=due
    )
    time.sleep(6)
    assert _accepted(pipeline) == 0
    assert _lots().count(batch_lot("scheduled")) == count

    def released() -> bool:
        # What beat's release_parked does every 30 s.
        release_parked(_lots(), Unpaced(), ProviderRegistry({}), pipeline.publisher, gate)
        return pipeline.statuses("scheduled").get("sent") == count

    wait_until(released, 60, "the scheduled batch", every=1)
    assert pipeline.stub.stats()["total"] == count
    with pipeline.sessions() as session:
        first_send = session.scalar(
            sa.select(sa.func.min(CustomerInteraction.sent_at)).where(
                CustomerInteraction.batch_id == "scheduled"
            )
        )
    assert first_send is not None and first_send >= due


def test_pausing_while_the_producer_still_enqueues(pipeline: Pipeline) -> None:
    count = 600
    pipeline.stub.configure(latency_ms=5)
    gate = _gate(pipeline)
    rows = (RecipientRow(i + 1, f"C-{i}", f"p{i}@example.org", {}) for i in range(count))
    producer = BatchProducer(pipeline.sessions, pipeline.publisher, pipeline.settings, gate=gate)
    changes = []

    def pause_midway(done: int) -> None:
        if not changes and done:
            for _ in range(2):  # two operators at once: one changes it, the other is told
                changes.append(
                    change_state(pipeline.sessions, gate, "racing", "pause", "ops", None)
                )

    producer.run("racing", "email", "welcome", rows, on_progress=pause_midway)
    assert [c.changed for c in changes] == [True, False]
    pipeline.start_worker()
    wait_until(lambda: _lots().count(batch_lot("racing")) == count, 60, "every message parked")
    assert _accepted(pipeline) == 0
    change_state(pipeline.sessions, gate, "racing", "resume", "ops", None)
    release_batch(_lots(), "racing", gate, pipeline.publisher)
    wait_until(lambda: pipeline.statuses("racing").get("sent") == count, 120, "the batch")
    assert set(pipeline.receipts().values()) == {1}
