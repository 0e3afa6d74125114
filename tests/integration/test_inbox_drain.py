"""The inbox drain: callbacks applied in batches, each once, and the wake that queues a drain.

The drain runs on PostgreSQL with real commits (two drains race on separate connections);
the wake runs against the test Redis broker, whose queue is read back to count messages.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from broker.app import create_app
from broker.wake import FLAG, FLAG_SECONDS, InboxWake
from config.celery import STATUS_QUEUE
from config.settings import Settings
from models import InboundEvent, InteractionEvent
from models.base import utcnow
from models.enums import InteractionStatus
from providers.registry import ProviderRegistry
from services.callbacks import inbox
from services.callbacks.parsing import parse_notify
from services.records import InteractionRecord
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email
from tests.fakes import FakeProvider
from tests.webhook_fixtures import notify_receipt

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")


def _store(db: Database, reference: str, provider_id: str | None = None) -> int:
    """A delivery receipt for our ``reference``, under the provider's id for it."""
    body = notify_receipt(provider_id or f"N-{uuid.uuid4()}", reference)
    return inbox.store(db.sessions, "notify", parse_notify(body), body, utcnow()).inbound_id


def _states(db: Database) -> dict[int, tuple[str, int]]:
    with db.sessions() as session:
        table = InboundEvent
        rows = session.execute(sa.select(table.id, table.state, table.attempts))
        return {row.id: (row.state.value, row.attempts) for row in rows}


def _sent_with_receipts(
    db: Database, settings: Settings, count: int
) -> tuple[CommunicationService, list[InteractionRecord], list[int]]:
    """``count`` emails SENT to customers C-0..., and a stored delivery receipt for each."""
    service = CommunicationService(db.sessions, ProviderRegistry.single(FakeProvider()), settings)
    sent = [send_email(service, customer_id=f"C-{n}").interaction for n in range(count)]
    receipts = [_store(db, str(s.interaction_uuid), s.provider_reference) for s in sent]
    return service, sent, receipts


def test_two_drains_at_once_take_each_untried_callback_once(
    committed_pg: Database, test_settings: Settings
) -> None:
    service, _, waiting = _sent_with_receipts(committed_pg, test_settings, 40)
    tried = _store(committed_pg, str(uuid.uuid4()))
    inbox.apply(committed_pg.sessions, tried, final=False, now=utcnow())  # unknown: attempts 1
    start = threading.Barrier(2)

    def drain(_: int) -> inbox.Drained:
        start.wait()
        return inbox.drain(committed_pg.sessions, 30, lambda: None, lambda _: None, utcnow)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(drain, range(2))

    assert not set(first.taken) & set(second.taken)
    assert sorted(first.taken + second.taken) == waiting  # not the one tried before
    assert first.applied + second.applied == 40
    states = _states(committed_pg)
    assert {states[i] for i in waiting} == {("applied", 1)}
    for n in range(40):
        history = service.get_history(f"C-{n}", 1).items[0]
        assert history.status is InteractionStatus.DELIVERED


def test_a_drain_that_fails_part_way_leaves_its_batch_for_the_next_one(
    committed_pg: Database, test_settings: Settings
) -> None:
    _, sent, waiting = _sent_with_receipts(committed_pg, test_settings, 3)
    calls: list[int] = []

    def clock_that_fails_at_the_second_callback() -> datetime:
        calls.append(1)
        if len(calls) == 3:  # the first callback is applied and settled in the open transaction
            raise RuntimeError("the worker dies here")
        return utcnow()

    with pytest.raises(RuntimeError):
        inbox.drain(
            committed_pg.sessions,
            10,
            lambda: None,
            lambda _: None,
            clock_that_fails_at_the_second_callback,
        )
    assert {_states(committed_pg)[i] for i in waiting} == {("received", 0)}  # rolled back

    again = inbox.drain(committed_pg.sessions, 10, lambda: None, lambda _: None, utcnow)

    assert again.taken == tuple(waiting) and again.applied == 3
    assert {_states(committed_pg)[i] for i in waiting} == {("applied", 1)}
    with committed_pg.sessions() as session:
        recorded = session.scalars(
            sa.select(InteractionEvent.provider_event_id).where(
                InteractionEvent.provider_event_id.is_not(None)
            )
        ).all()
    # The first callback was applied before the failure and again after it: recorded once.
    assert sorted(recorded) == sorted(f"{s.provider_reference}:delivered" for s in sent)


def test_a_drain_applies_its_batch_and_hands_on_what_matches_nothing(
    db: Database, test_settings: Settings
) -> None:
    providers = ProviderRegistry.single(FakeProvider())
    service = CommunicationService(db.sessions, providers, test_settings)
    sent = [send_email(service, key=f"k-{n}", customer_id=f"C-{n}").interaction for n in range(3)]
    known = [_store(db, str(s.interaction_uuid), s.provider_reference) for s in sent]
    unknown = _store(db, str(uuid.uuid4()))
    more: list[bool] = []
    handed_on: list[int] = []

    drained = inbox.drain(db.sessions, 10, lambda: more.append(True), handed_on.append, now=utcnow)

    assert drained.applied == 3 and drained.handed_on == (unknown,) == tuple(handed_on)
    assert more == []  # the batch was not full
    states = _states(db)
    assert [states[i] for i in known] == [("applied", 1)] * 3
    assert states[unknown] == ("received", 1)  # the per-event retry takes it from here
    for n in range(3):
        assert service.get_history(f"C-{n}", 1).items[0].status is InteractionStatus.DELIVERED
    # Nothing is left for the next drain: each callback is applied once.
    assert inbox.drain(db.sessions, 10, lambda: more.append(True), handed_on.append, utcnow) == (
        inbox.Drained((), ())
    )


def test_a_full_batch_asks_for_another_drain(db: Database) -> None:
    for _ in range(5):
        _store(db, str(uuid.uuid4()))
    more: list[bool] = []
    first = inbox.drain(db.sessions, 3, lambda: more.append(True), lambda _: None, utcnow)
    second = inbox.drain(db.sessions, 3, lambda: more.append(True), lambda _: None, utcnow)
    assert (len(first.taken), len(second.taken), more) == (3, 2, [True])
    assert set(first.taken).isdisjoint(second.taken)


@pytest.fixture
def broker(test_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BROKER)
    client.delete(STATUS_QUEUE, wake_flag())
    yield client
    client.delete(STATUS_QUEUE, wake_flag())
    client.close()


def wake_flag() -> str:
    return FLAG


def test_the_wake_queues_one_drain_until_that_drain_starts(
    broker: redis.Redis, test_settings: Settings
) -> None:
    wake = InboxWake(create_app(test_settings.model_copy(update={"broker_url": BROKER})))
    for inbound_id in range(1, 51):
        wake.enqueue(inbound_id)
    assert broker.llen(STATUS_QUEUE) == 1
    assert 0 < broker.ttl(wake_flag()) <= FLAG_SECONDS
    wake.started()
    wake.enqueue(51)
    assert broker.llen(STATUS_QUEUE) == 2
    message = broker.lindex(STATUS_QUEUE, 0) or b""
    assert b'"task": "tasks.drain_inbox"' in message and b"kwargsrepr" in message


def test_a_wake_on_a_broker_that_is_down_raises(test_settings: Settings) -> None:
    down = InboxWake(
        create_app(test_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    )
    with pytest.raises(redis.ConnectionError):
        down.enqueue(1)  # the webhook answers 503 and the provider tries again


def test_a_wake_whose_publish_fails_raises_and_leaves_no_flag(
    broker: redis.Redis, test_settings: Settings
) -> None:
    celery = create_app(test_settings.model_copy(update={"broker_url": BROKER}))

    def refuse(*_: object, **__: object) -> None:
        raise ConnectionError("broker gone")

    celery.send_task = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        InboxWake(celery).enqueue(1)
    assert not broker.exists(wake_flag())  # the next callback will try again


def test_on_the_filesystem_broker_every_callback_queues_a_drain(
    tmp_path: Path, test_settings: Settings
) -> None:
    settings = test_settings.model_copy(update={"broker_url": None, "var_dir": tmp_path})
    wake = InboxWake(create_app(settings))
    wake.enqueue(1)
    wake.enqueue(2)
    folder = settings.broker_folder
    assert len([p for p in folder.iterdir() if p.is_file()]) == 2
