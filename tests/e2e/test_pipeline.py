"""The pipeline on real workers, Redis, PostgreSQL and the stub provider, crashes included."""

from __future__ import annotations

import os
import random

import pytest
import redis
import sqlalchemy as sa

from devtools.processes import wait_until
from models import CustomerInteraction
from services.sending.batches import DispatchMessage
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
# Two SIGKILLs over 1,000 recipients keep the suite's time in bounds; E2E_CHAOS_RECIPIENTS=5000
# is the longer run (the kill points scale with it).
CHAOS_RECIPIENTS = int(os.environ.get("E2E_CHAOS_RECIPIENTS", "1000"))


def _settle(pipeline: Pipeline, batch_id: str, expected: int, timeout: float = 90) -> None:
    """Reconcile until every interaction of the batch is SENT, as beat would every minute."""

    def all_sent() -> bool:
        if pipeline.statuses(batch_id)["sent"] == expected:
            return True
        pipeline.reconcile()
        return False

    wait_until(all_sent, timeout, f"{expected} SENT interactions in {batch_id}", every=1.0)


def test_a_batch_is_sent_once_and_a_rerun_sends_nothing(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    report = pipeline.send_batch("b500", 500)
    assert (report.rows, report.enqueued, report.rejected) == (500, 500, 0)
    wait_until(lambda: pipeline.statuses("b500")["sent"] == 500, 60, "500 SENT")
    receipts = pipeline.receipts()
    assert len(receipts) == 500 and set(receipts.values()) == {1}

    again = pipeline.send_batch("b500", 500)
    assert (again.enqueued, again.already_sent) == (0, 500)
    assert pipeline.stub.stats()["total"] == 500


def test_chaos_two_sigkills_then_resume_and_reconcile(pipeline: Pipeline) -> None:
    rng = random.Random()
    count = CHAOS_RECIPIENTS
    pipeline.stub.configure(latency_ms=5)
    first = pipeline.start_worker()
    pipeline.send_batch("chaos", count)
    kill_at = rng.randint(count // 10, count * 7 // 20)
    wait_until(lambda: pipeline.stub.stats()["total"] >= kill_at, 60, f"{kill_at} receipts")
    first.kill()

    second = pipeline.start_worker()
    kill_at = rng.randint(count * 9 // 20, count * 7 // 10)
    wait_until(lambda: pipeline.stub.stats()["total"] >= kill_at, 60, f"{kill_at} receipts")
    second.kill()

    pipeline.start_worker()
    resumed = pipeline.send_batch("chaos", count)
    assert resumed.enqueued + resumed.already_sent == count
    _settle(pipeline, "chaos", count)

    receipts = pipeline.receipts()
    assert len(receipts) == count, "every interaction reached the provider"
    assert max(receipts.values()) == 1, "no interaction reached the provider twice"
    assert pipeline.statuses("chaos") == {"sent": count}


def test_sent_at_the_provider_but_killed_before_the_commit(pipeline: Pipeline) -> None:
    # The stub records each receipt, then holds its answer: the worker dies waiting for it.
    pipeline.stub.configure(hold_ms=20_000)
    worker = pipeline.start_worker()
    pipeline.send_batch("held", 5)
    wait_until(lambda: pipeline.stub.stats()["total"] == 5, 30, "5 receipts")
    worker.kill()
    pipeline.stub.configure(hold_ms=0)

    pipeline.start_worker()
    rerun = pipeline.send_batch("held", 5)
    assert rerun.enqueued == 5, "still PENDING, so the resume enqueues them again"
    _settle(pipeline, "held", 5, timeout=60)
    assert pipeline.stub.stats()["total"] == 5, "reconciliation found them; nothing re-sent"
    with pipeline.sessions() as session:
        rows = session.scalars(sa.select(CustomerInteraction)).all()
    assert {r.provider_reference is not None for r in rows} == {True}
    assert {r.attempt_count for r in rows} == {1}


def test_two_workers_and_a_duplicate_enqueue_send_once(pipeline: Pipeline) -> None:
    pipeline.stub.configure(latency_ms=50)
    pipeline.start_worker()
    pipeline.start_worker()
    message = DispatchMessage(
        "dup:C-1", "C-1", "email", "welcome", {"name": "Ada"}, "ada@example.org", "dup"
    )
    pipeline.enqueue(message, times=20)
    wait_until(lambda: pipeline.statuses()["sent"] == 1, 30, "the interaction SENT")
    broker = redis.Redis.from_url(pipeline.settings.resolved_broker_url)
    # Every duplicate consumed and acknowledged before counting.
    wait_until(
        lambda: broker.llen("dispatch") == 0 and broker.hlen("unacked") == 0, 30, "an empty queue"
    )
    assert pipeline.stub.stats()["total"] == 1


def test_transient_bursts_end_sent_and_permanent_errors_end_failed(pipeline: Pipeline) -> None:
    pipeline.stub.configure(
        fail_next=25, failure_status=429, reject_recipients_containing="person7"
    )
    pipeline.start_worker()
    pipeline.send_batch("bursts", 20)
    # person7 is rejected by the provider for good; the other 19 get through after retries.
    wait_until(
        lambda: pipeline.statuses("bursts") == {"sent": 19, "failed": 1}, 60, "19 SENT, 1 FAILED"
    )
    with pipeline.sessions() as session:
        failed = session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.status == "failed")
        ).one()
        retried = session.scalar(
            sa.select(sa.func.count()).where(CustomerInteraction.attempt_count > 1)
        )
    assert failed.customer_id == "C-7"
    assert failed.failure_reason and "400" in failed.failure_reason
    assert "person7" not in failed.failure_reason
    assert retried and retried > 0
    assert pipeline.stub.stats()["total"] == 19


def test_retries_that_run_out_end_failed(pipeline: Pipeline) -> None:
    # Every request failing is an outage, which opens the breaker and fails nothing (see
    # test_provider_pace); with the breaker out of reach, each message's retries run out.
    pipeline.settings = pipeline.settings.model_copy(update={"breaker_failures": 10_000})
    pipeline.stub.configure(failure_rate=1.0, failure_status=503)
    pipeline.start_worker()
    pipeline.send_batch("outage", 3)
    wait_until(lambda: pipeline.statuses("outage") == {"failed": 3}, 60, "3 FAILED")
    with pipeline.sessions() as session:
        reasons = set(session.scalars(sa.select(CustomerInteraction.failure_reason)))
    assert len(reasons) == 1
    assert next(iter(reasons)).startswith("gave up after 9 attempts")  # type: ignore[union-attr]
