"""dispatch() at the provider's pace: push-back defers, never fails; a bad message still fails.

The provider is the Notify stub enforcing real limits over HTTP; the pace is shared through the
real Redis and the ledger is PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from config.settings import Settings
from devtools.stub.server import StubNotifyServer
from models import CustomerInteraction, InteractionEvent
from models.batch import Batch, BatchState
from models.enums import ChannelType, EventKind, InteractionStatus
from providers.notify import NotifyProvider
from providers.pacing import Hold, PaceSettings, RedisPacer
from providers.registry import ProviderRegistry
from services.errors import BatchHeld, Deferred, TransientDispatchError
from services.records import DispatchOutcome, DispatchResult
from services.sending.batch_control import BatchGate, Steering, Verdict
from services.sending.communication import CommunicationService
from services.sending.pacing import PaceKeeper, describe
from tests.conftest import Database
from tests.factories import send_email, unique_key
from tests.stub_fixtures import TEMPLATES, TEST_API_KEY

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(BROKER)
    yield connection
    for key in connection.scan_iter("interactions:pace:notify:*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def notify(stub_notify: StubNotifyServer) -> Iterator[NotifyProvider]:
    # A key of its own per test, so no two tests share a pace.
    provider = NotifyProvider(
        stub_notify.url, TEST_API_KEY, TEMPLATES, timeout=2, connect_timeout=1, per_minute=6000
    )
    provider.credential = provider.credential.__class__(
        "notify", uuid.uuid4().hex[:12], provider.credential.per_minute
    )
    yield provider
    provider.close()


@pytest.fixture
def service(
    committed_pg: Database, notify: NotifyProvider, client: redis.Redis, test_settings: Settings
) -> CommunicationService:
    pacer = RedisPacer(
        client, PaceSettings(horizon_seconds=2, failures_to_open=3, cooldown_seconds=30)
    )
    pace = PaceKeeper(pacer, test_settings)
    return CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(notify), test_settings, pace=pace
    )


def _row(db: Database, key: str) -> CustomerInteraction:
    with db.sessions() as session:
        return session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.idempotency_key == key)
        ).one()


def _failed(db: Database) -> int:
    with db.sessions() as session:
        table = CustomerInteraction
        query = sa.select(sa.func.count()).where(table.status == InteractionStatus.FAILED)
        return int(session.scalar(query) or 0)


def test_the_daily_limit_defers_until_the_reset_and_fails_nothing(
    service: CommunicationService,
    committed_pg: Database,
    stub_notify: StubNotifyServer,
    notify: NotifyProvider,
    client: redis.Redis,
    test_settings: Settings,
) -> None:
    stub_notify.configure(daily_limit=2)
    sent = [send_email(service, customer_id=f"C-{n}") for n in range(2)]
    assert all(result.outcome is DispatchOutcome.SENT for result in sent)
    capped = unique_key()
    with pytest.raises(Deferred) as deferred:
        send_email(service, customer_id="C-3", key=capped)
    assert deferred.value.hold == Hold.DAILY_LIMIT
    assert deferred.value.until is not None and deferred.value.wait > 0
    row = _row(committed_pg, capped)
    assert row.status is InteractionStatus.PENDING  # released, waiting: never FAILED
    assert "daily limit" in (row.failure_reason or "")
    # The next send is held before it claims anything: no request, no row.
    requests_before = stub_notify.stats()["received"]
    later = unique_key()
    with pytest.raises(Deferred):
        send_email(service, customer_id="C-4", key=later)
    assert stub_notify.stats()["received"] == requests_before
    with committed_pg.sessions() as session:
        assert (
            session.scalar(
                sa.select(sa.func.count()).where(CustomerInteraction.idempotency_key == later)
            )
            == 0
        )
    assert notify.credential is not None
    state = RedisPacer(client).state(notify.credential)
    said = describe("notify", state, "email") or ""
    assert said.startswith("paused: daily limit reached, resumes at")
    assert _failed(committed_pg) == 0
    # The limit resets (here: an operator lifts the pause once the provider's day turned).
    stub_notify.reset_daily_limit()
    RedisPacer(client).reset(notify.credential)
    assert send_email(service, customer_id="C-3", key=capped).outcome is DispatchOutcome.SENT
    assert stub_notify.stats()["receipts"][str(row.interaction_uuid)] == 1


def test_a_refused_key_opens_the_breaker_and_fails_nothing(
    service: CommunicationService,
    committed_pg: Database,
    stub_notify: StubNotifyServer,
    notify: NotifyProvider,
    client: redis.Redis,
) -> None:
    stub_notify.configure(revoke_all=True)
    key = unique_key()
    with pytest.raises(Deferred) as deferred:
        send_email(service, key=key)
    assert deferred.value.hold == Hold.KEY_REFUSED
    assert _row(committed_pg, key).status is InteractionStatus.PENDING
    with pytest.raises(Deferred):
        send_email(service)
    assert stub_notify.stats()["refused"]["revoked"] == 1  # the breaker kept the second away
    assert notify.credential is not None
    pacer = RedisPacer(client)
    assert (describe("notify", pacer.state(notify.credential)) or "").startswith("stopped:")
    stub_notify.configure(revoke_all=False)
    pacer.reset(notify.credential)
    assert send_email(service, key=key).outcome is DispatchOutcome.SENT
    assert _failed(committed_pg) == 0


def test_a_429_is_not_an_attempt_spent_and_slows_every_sender(
    service: CommunicationService,
    committed_pg: Database,
    stub_notify: StubNotifyServer,
    notify: NotifyProvider,
    client: redis.Redis,
) -> None:
    stub_notify.configure(rate_limit=1, rate_window_seconds=30, retry_after_seconds=20)
    assert send_email(service).outcome is DispatchOutcome.SENT
    key = unique_key()
    with pytest.raises(Deferred) as deferred:
        send_email(service, key=key)
    assert deferred.value.hold == Hold.SLOW_DOWN and deferred.value.wait == 20
    row = _row(committed_pg, key)
    assert row.status is InteractionStatus.PENDING
    with committed_pg.sessions() as session:
        kinds = session.scalars(
            sa.select(InteractionEvent.kind).where(InteractionEvent.interaction_id == row.id)
        ).all()
    assert EventKind.ATTEMPT_RELEASED in kinds
    # Every other sender now waits before its claim, without asking the provider.
    with pytest.raises(Deferred) as held:
        send_email(service)
    assert held.value.hold == Hold.SLOW_DOWN
    assert stub_notify.stats()["refused"]["rate_limited"] == 1


def test_failures_in_a_row_open_the_breaker_then_sends_wait(
    service: CommunicationService,
    committed_pg: Database,
    stub_notify: StubNotifyServer,
) -> None:
    stub_notify.configure(outage_mode="error", outage_seconds=30)
    for _ in range(3):
        with pytest.raises(TransientDispatchError):
            send_email(service)
    with pytest.raises(Deferred) as deferred:
        send_email(service)
    assert deferred.value.hold == Hold.OUTAGE
    assert stub_notify.stats()["refused"]["outage"] == 3
    assert _failed(committed_pg) == 0


def test_a_message_the_provider_rejects_still_fails_at_once(
    service: CommunicationService, committed_pg: Database, stub_notify: StubNotifyServer
) -> None:
    stub_notify.configure(daily_limit=100, rate_limit=100)
    good = send_email(service, customer_id="C-1")
    bad = send_email(service, customer_id="C-2", template="no_such_template")
    assert good.outcome is DispatchOutcome.SENT
    assert bad.outcome is DispatchOutcome.FAILED
    assert bad.interaction.failure_reason


class CommandLog(redis.Redis):
    """The real Redis client, keeping the name of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


@pytest.fixture
def batch_service(
    committed_pg: Database, notify: NotifyProvider, client: redis.Redis, test_settings: Settings
) -> Iterator[tuple[CommunicationService, CommandLog, BatchGate]]:
    commands = CommandLog.from_url(BROKER)
    pace = PaceKeeper(RedisPacer(commands, PaceSettings(horizon_seconds=2)), test_settings)
    # The pace and the batch gate on one client, so every command of either is counted.
    gate = BatchGate(committed_pg.sessions, commands)
    service = CommunicationService(
        committed_pg.sessions,
        ProviderRegistry.single(notify),
        test_settings,
        pace=pace,
        batches=gate,
    )
    yield service, commands, gate
    for key in client.scan_iter("interactions:batch:*"):
        client.delete(key)
    commands.close()


def _batch_send(service: CommunicationService, batch_id: str, key: str) -> DispatchResult:
    return service.dispatch(
        "C-1", "email", "welcome", {"name": "Ada"}, key, "person@example.org", batch_id=batch_id
    )


def _schedule(client: redis.Redis, notify: NotifyProvider) -> bytes | None:
    assert notify.credential is not None
    value: bytes | None = client.get(f"{notify.credential.key}:schedule")
    return value


@pytest.mark.parametrize(
    ("steering", "verdict"),
    [
        (Steering(BatchState.PAUSED, None), Verdict.HOLD),
        (Steering(BatchState.CANCELLED, None), Verdict.DROP),
        (Steering(BatchState.SENDING, datetime.now(UTC) + timedelta(hours=1)), Verdict.HOLD),
    ],
)
def test_a_held_batch_message_is_stopped_by_the_pace_call_itself_and_books_no_slot(
    batch_service: tuple[CommunicationService, CommandLog, BatchGate],
    committed_pg: Database,
    stub_notify: StubNotifyServer,
    notify: NotifyProvider,
    client: redis.Redis,
    steering: Steering,
    verdict: Verdict,
) -> None:
    service, commands, gate = batch_service
    batch = f"b-{uuid.uuid4().hex[:8]}"
    gate.mirror(batch, steering)
    commands.sent.clear()
    received = stub_notify.stats()["received"]
    key = unique_key()
    with pytest.raises(BatchHeld) as held:
        _batch_send(service, batch, key)
    assert (held.value.batch_id, held.value.verdict) == (batch, verdict)
    # One script call read the gate and took nothing: no slot, no request, no row.
    assert commands.sent == ["EVALSHA"]
    assert _schedule(client, notify) is None
    assert stub_notify.stats()["received"] == received
    with committed_pg.sessions() as session:
        found = sa.select(sa.func.count()).where(CustomerInteraction.idempotency_key == key)
        assert session.scalar(found) == 0


def test_an_open_batch_message_goes_with_one_redis_call_for_its_pace_and_its_batch(
    batch_service: tuple[CommunicationService, CommandLog, BatchGate],
    notify: NotifyProvider,
    client: redis.Redis,
) -> None:
    service, commands, gate = batch_service
    batch = f"b-{uuid.uuid4().hex[:8]}"
    past = datetime.now(UTC) - timedelta(minutes=1)
    gate.mirror(batch, Steering(BatchState.SENDING, past))
    commands.sent.clear()
    assert _batch_send(service, batch, unique_key()).outcome is DispatchOutcome.SENT
    assert commands.sent == ["EVALSHA"]
    assert _schedule(client, notify) is not None  # a slot was booked for it


def test_a_batch_whose_copy_redis_lost_is_asked_of_the_database_and_copied_back(
    batch_service: tuple[CommunicationService, CommandLog, BatchGate],
    committed_pg: Database,
    notify: NotifyProvider,
    client: redis.Redis,
) -> None:
    service, commands, _ = batch_service
    sending, paused = (f"b-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with committed_pg.sessions() as session, session.begin():
        for batch_id, state in ((sending, BatchState.SENDING), (paused, BatchState.PAUSED)):
            session.add(
                Batch(id=batch_id, channel=ChannelType.EMAIL, template_key="welcome", state=state)
            )
    with pytest.raises(BatchHeld) as held:
        _batch_send(service, paused, unique_key())
    assert held.value.verdict == Verdict.HOLD
    assert _schedule(client, notify) is None
    assert _batch_send(service, sending, unique_key()).outcome is DispatchOutcome.SENT
    # Read from the database, copied back: the next message's gate is read with its slot.
    assert client.get(f"interactions:batch:{sending}") == b"sending|0"
    commands.sent.clear()
    assert _batch_send(service, sending, unique_key()).outcome is DispatchOutcome.SENT
    assert commands.sent == ["EVALSHA"]
