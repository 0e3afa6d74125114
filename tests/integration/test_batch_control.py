"""Steering a batch on PostgreSQL and Redis: states, history, the gate and its Redis copy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from config.settings import Settings
from models.base import utcnow
from models.batch import BatchState
from services.errors import InvalidInput
from services.sending.batch_control import BatchGate, Verdict, actions, change_state
from services.sending.batch_status import batch_status
from services.sending.batches import BatchProducer, RecipientRow
from tests.conftest import Database

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")


class Kept:
    def __init__(self) -> None:
        self.messages: list[object] = []

    def publish(self, messages: list[object]) -> None:
        self.messages.extend(messages)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(BROKER)
    yield connection
    for key in connection.scan_iter("interactions:batch:*"):
        connection.delete(key)
    connection.close()


def _start(db: Database, settings: Settings, gate: BatchGate, batch_id: str, **kw: object) -> None:
    rows = [RecipientRow(2, "C-1", "ada@example.org", {})]
    BatchProducer(db.sessions, Kept(), settings, gate=gate).run(
        batch_id,
        "email",
        "welcome",
        rows,
        **kw,  # type: ignore[arg-type]
    )


def test_pause_resume_cancel_are_recorded_with_who_and_why(
    committed_pg: Database, test_settings: Settings, client: redis.Redis
) -> None:
    gate = BatchGate(committed_pg.sessions, client)
    _start(committed_pg, test_settings, gate, "steered")
    assert gate.verdict("steered") is Verdict.GO
    paused = change_state(committed_pg.sessions, gate, "steered", "pause", "ops", "typo")
    again = change_state(committed_pg.sessions, gate, "steered", "pause", "lee", None)
    assert paused.changed and not again.changed
    assert gate.verdict("steered") is Verdict.HOLD
    change_state(committed_pg.sessions, gate, "steered", "resume", "ops", "fixed")
    assert gate.verdict("steered") is Verdict.GO
    change_state(committed_pg.sessions, gate, "steered", "cancel", "ops", "recalled")
    assert gate.verdict("steered") is Verdict.DROP
    with pytest.raises(InvalidInput, match="cancelled"):
        change_state(committed_pg.sessions, gate, "steered", "resume", "ops", None)
    history = [(a.action, a.actor, a.reason) for a in actions(committed_pg.sessions, "steered")]
    assert history == [
        ("start", "(not given)", None),
        ("pause", "ops", "typo"),
        ("resume", "ops", "fixed"),
        ("cancel", "ops", "recalled"),
    ]
    with pytest.raises(InvalidInput, match="cancelled"):
        _start(committed_pg, test_settings, gate, "steered")


def test_the_gate_reads_the_database_when_redis_lost_its_copy(
    committed_pg: Database, test_settings: Settings, client: redis.Redis
) -> None:
    gate = BatchGate(committed_pg.sessions, client)
    _start(committed_pg, test_settings, gate, "copied")
    change_state(committed_pg.sessions, gate, "copied", "pause", "ops", None)
    client.delete("interactions:batch:copied")
    assert gate.verdict("copied") is Verdict.HOLD
    assert client.get("interactions:batch:copied") is not None


def test_a_scheduled_batch_holds_until_its_time_stored_in_utc(
    committed_pg: Database, test_settings: Settings, client: redis.Redis
) -> None:
    gate = BatchGate(committed_pg.sessions, client)
    pacific = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)  # 09:00-08:00
    local = pacific.astimezone(ZoneInfo("America/Vancouver"))
    _start(committed_pg, test_settings, gate, "xmas", not_before=local)
    steering = gate.steering("xmas")
    assert steering is not None and steering.state is BatchState.SENDING
    assert steering.not_before == pacific and steering.not_before.utcoffset() == timedelta(0)
    assert gate.verdict("xmas", now=pacific - timedelta(seconds=1)) is Verdict.HOLD
    assert gate.verdict("xmas", now=pacific) is Verdict.GO
    assert gate.verdict("never-run") is Verdict.GO
    assert utcnow() < pacific or gate.verdict("xmas") is Verdict.GO


def test_each_run_of_the_producer_is_recorded_with_who_ran_it(
    committed_pg: Database, test_settings: Settings, client: redis.Redis
) -> None:
    gate = BatchGate(committed_pg.sessions, client)
    _start(committed_pg, test_settings, gate, "runs", started_by=" ops.kim ")
    change_state(committed_pg.sessions, gate, "runs", "pause", "ops.lee", "typo")
    _start(committed_pg, test_settings, gate, "runs", started_by="api-client")
    history = [(a.action, a.actor) for a in actions(committed_pg.sessions, "runs")]
    assert history == [("start", "ops.kim"), ("pause", "ops.lee"), ("run_again", "api-client")]
    status = batch_status(committed_pg.sessions, "runs", utcnow())
    assert (status.started_by, status.runs) == ("ops.kim", 2)
    for name in ("", "x" * 101, "ops\nkim"):
        with pytest.raises(InvalidInput, match="started_by"):
            _start(committed_pg, test_settings, gate, "runs", started_by=name)
    assert len(actions(committed_pg.sessions, "runs")) == 3, "a refused run records nothing"
    assert batch_status(committed_pg.sessions, "runs", utcnow()).runs == 2
