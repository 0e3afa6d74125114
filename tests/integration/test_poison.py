"""Poison-proof callbacks: values that cannot be stored are refused at the door, never queued.

Each test here is a regression test for issue 19 (findings 1 and 5). The door tests post what
a provider could sign; the inbox tests store such a body as the old webhook did (202), then
show that applying it settles that row alone as rejected and never blocks the next one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.exc import DataError, OperationalError
from standardwebhooks import Webhook

from config.settings import Settings
from models import InboundEvent
from models.base import utcnow
from models.enums import InteractionStatus
from models.inbound import InboundState
from providers.registry import ProviderRegistry
from services.callbacks import inbox, status_events
from services.callbacks.parsing import ParsedCallback
from services.callbacks.status_events import StatusEvent
from services.ledger.transitions import Outcome
from services.records import InteractionRecord
from services.sending.communication import CommunicationService
from services.sending.reconciliation import Reconciler
from tests.conftest import Database
from tests.factories import send_email
from tests.fakes import FakeProvider
from tests.integration.test_webhooks import webhook_settings
from tests.webhook_fixtures import SECRET_A, TOKEN_A, RecordingQueue, notify_receipt
from workers.webhooks import create_app

NOTIFY = "/callbacks/notify"
SIGNED = "/callbacks/signed"
DEEP = 1500


@pytest.fixture
def client(db: Database, test_settings: Settings) -> Iterator[FlaskClient]:
    roomy = webhook_settings(test_settings, webhook_max_body_bytes=65536)  # the default
    app = create_app(roomy, RecordingQueue(), db.sessions)
    with app.test_client() as test_client:
        yield test_client


def signed_headers(body: bytes, webhook_id: str | None = None) -> dict[str, str]:
    """Headers signing ``body`` as a Standard Webhooks sender holding SECRET_A would."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET_A).sign(webhook_id, now, body.decode()),
        "Content-Type": "application/json",
    }


def signed_body(reference: str = "", status: str = "delivered", **top: Any) -> bytes:
    """A Standard Webhooks status event for ``reference``."""
    data = {"type": "message.status", "data": {"reference": reference or str(uuid.uuid4())}}
    data["data"]["status"] = status  # type: ignore[index]
    return json.dumps({**data, **top}).encode()


def notify_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN_A}", "Content-Type": "application/json"}


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


POISONED_SIGNED = {
    "NUL in type": signed_body(type="message\u0000status"),
    "surrogate in reference": signed_body(reference="\ud800"),
    "surrogate in status": signed_body(status="delivered\udfff"),
    "NUL in a key": json.dumps(
        {"type": "t", "data": {"reference": "r", "status": "delivered", "\u0000": 1}}
    ).encode(),
    "year 1 with an offset": signed_body(
        data={"reference": "r", "status": "delivered", "occurred_at": "0001-01-01T00:30:00+01:00"}
    ),
    "duplicate status": (
        b'{"type": "t", "data": {"reference": "r", "status": "delivered", "status": "failed"}}'
    ),
    "deep nesting": b'{"type": "t", "x": ' + deep(DEEP) + b"}",
    "deep nesting alone": deep(DEEP),
    "huge integer": b'{"type": "t", "n": ' + b"9" * 5000 + b"}",
}

POISONED_NOTIFY = {
    "surrogate in id": notify_receipt("\ud800", str(uuid.uuid4())),
    "NUL in id": notify_receipt("N-\u0000", str(uuid.uuid4())),
    "surrogate in reference": notify_receipt("N-1", "\udc00"),
    "year 1 with an offset": notify_receipt(
        "N-2", str(uuid.uuid4()), completed_at="0001-01-01T00:00:00+01:00"
    ),
    "no offset": notify_receipt("N-3", str(uuid.uuid4()), completed_at="2026-01-01T10:00:00"),
    "duplicate status": (
        b'{"id": "N-4", "reference": "r", "status": "delivered", "status": "permanent-failure"}'
    ),
    "deep nesting": b'{"id": "N-5", "x": ' + deep(DEEP) + b"}",
    "deep nesting alone": deep(DEEP),
    "huge integer": b'{"id": "N-8", "n": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("body", POISONED_SIGNED.values(), ids=POISONED_SIGNED.keys())
def test_a_signed_value_that_cannot_be_stored_is_refused_at_the_door(
    client: FlaskClient, db: Database, body: bytes
) -> None:
    answer = client.post(SIGNED, data=body, headers=signed_headers(body))
    assert answer.status_code == 400
    assert db.counts()["inbound_events"] == 0


@pytest.mark.parametrize("body", POISONED_NOTIFY.values(), ids=POISONED_NOTIFY.keys())
def test_a_notify_value_that_cannot_be_stored_is_refused_at_the_door(
    client: FlaskClient, db: Database, body: bytes
) -> None:
    answer = client.post(NOTIFY, data=body, headers=notify_headers())
    assert answer.status_code == 400
    assert db.counts()["inbound_events"] == 0


def test_a_refusal_names_the_field_and_never_echoes_the_value(client: FlaskClient) -> None:
    body = notify_receipt("N-6", str(uuid.uuid4()), status="secret-status-value")
    answer = client.post(NOTIFY, data=body, headers=notify_headers())
    assert answer.status_code == 400
    assert b"secret-status-value" not in answer.data
    assert b"status" in answer.data


def _sent(db: Database, settings: Settings, count: int) -> list[InteractionRecord]:
    service = CommunicationService(db.sessions, ProviderRegistry.single(FakeProvider()), settings)
    return [send_email(service, customer_id=f"C-{n}").interaction for n in range(count)]


def _store_raw(db: Database, provider: str, event_id: str, body: bytes) -> int:
    """Store ``body`` as the old webhook did, whatever the parser of today says of it."""
    event = StatusEvent(reference="", status=InteractionStatus.DELIVERED)
    parsed = ParsedCallback(event_id, event)
    return inbox.store(db.sessions, provider, parsed, body, utcnow()).inbound_id


def _good(db: Database, sent: InteractionRecord) -> int:
    body = notify_receipt(sent.provider_reference or "", str(sent.interaction_uuid))
    return _store_raw(db, "notify", f"{sent.provider_reference}:delivered", body)


def _row(db: Database, inbound_id: int) -> InboundEvent:
    with db.sessions() as session:
        row = session.get(InboundEvent, inbound_id)
        assert row is not None
        return row


def _delivered(db: Database, sent: InteractionRecord) -> bool:
    with db.sessions() as session:
        status = session.execute(
            sa.text("SELECT status FROM interactions WHERE interaction_uuid = :u"),
            {"u": sent.interaction_uuid},
        ).scalar_one()
    return bool(status == InteractionStatus.DELIVERED.value)


# Bodies the old door let through (answered 202) that no database can apply.
STORED_POISON = {
    "signed NUL in type": ("signed", signed_body(type="message\u0000status")),
    "signed surrogate in reference": ("signed", signed_body(reference="\ud800")),
    "notify year 1 with an offset": (
        "notify",
        notify_receipt("N-7", str(uuid.uuid4()), completed_at="0001-01-01T00:00:00+01:00"),
    ),
}


@pytest.mark.parametrize(("provider", "body"), STORED_POISON.values(), ids=STORED_POISON.keys())
def test_a_poisoned_row_is_rejected_alone_and_the_drain_applies_the_next(
    committed_pg: Database, test_settings: Settings, provider: str, body: bytes
) -> None:
    db = committed_pg
    (sent,) = _sent(db, test_settings, 1)
    bad = _store_raw(db, provider, f"poison-{uuid.uuid4().hex}", body)
    good = _good(db, sent)

    drained = inbox.drain(db.sessions, 10, lambda: None, lambda _: None, utcnow)

    assert drained.taken == (bad, good)
    assert _row(db, bad).state is InboundState.REJECTED
    assert _row(db, bad).reason
    assert _row(db, bad).body == body.decode()  # kept as received
    assert _row(db, good).state is InboundState.APPLIED
    assert _delivered(db, sent)
    assert inbox.rejected_count(db.sessions) == 1


@pytest.mark.parametrize(("provider", "body"), STORED_POISON.values(), ids=STORED_POISON.keys())
def test_the_one_at_a_time_apply_dead_letters_a_poisoned_row(
    committed_pg: Database, provider: str, body: bytes
) -> None:
    bad = _store_raw(committed_pg, provider, f"poison-{uuid.uuid4().hex}", body)
    assert inbox.apply(committed_pg.sessions, bad, final=False, now=utcnow()) is Outcome.MALFORMED
    row = _row(committed_pg, bad)
    assert row.state is InboundState.REJECTED
    assert row.reason and "\ud800" not in row.reason and "\x00" not in row.reason


class _NoPublisher:
    def publish(self, messages: object) -> None:
        raise AssertionError("nothing to publish")


def test_reconciliation_settles_a_poisoned_row_and_matches_the_next(
    committed_pg: Database, test_settings: Settings
) -> None:
    db = committed_pg
    (sent,) = _sent(db, test_settings, 1)
    bad = _store_raw(db, "signed", "poison-r", signed_body(reference="\ud800"))
    good = _good(db, sent)
    later = datetime(2100, 1, 1, tzinfo=UTC)
    registry = ProviderRegistry.single(FakeProvider())
    reconciler = Reconciler(db.sessions, registry, _NoPublisher(), test_settings, lambda: later)

    report = reconciler.run()

    assert report.callbacks_matched == 2
    assert _row(db, bad).state is InboundState.REJECTED
    assert _row(db, good).state is InboundState.APPLIED
    assert reconciler.run().callbacks_matched == 0  # the bad row is not tried again


def _failing_on(monkeypatch: pytest.MonkeyPatch, reference: str, error: Exception) -> None:
    """Make applying the event for ``reference`` raise ``error``; others apply as usual."""
    real = status_events.apply

    def apply(sessions: Any, event: StatusEvent, now: datetime) -> Any:
        if event.reference == reference:
            raise error
        return real(sessions, event, now)

    monkeypatch.setattr(status_events, "apply", apply)


def test_a_deadlock_retries_the_whole_batch_and_rejects_nothing(
    committed_pg: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = committed_pg
    first, second = _sent(db, test_settings, 2)
    rows = [_good(db, first), _good(db, second)]
    deadlock = OperationalError("UPDATE", {}, Exception("deadlock detected"))
    _failing_on(monkeypatch, second.provider_reference or "", deadlock)

    with pytest.raises(OperationalError):
        inbox.drain(db.sessions, 10, lambda: None, lambda _: None, utcnow)

    assert [_row(db, r).state for r in rows] == [InboundState.RECEIVED] * 2
    assert [_row(db, r).attempts for r in rows] == [0, 0]
    assert not _delivered(db, first)  # rolled back with its batch, to be applied again


def test_a_value_the_database_refuses_settles_only_its_row(
    committed_pg: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = committed_pg
    first, second = _sent(db, test_settings, 2)
    rows = [_good(db, first), _good(db, second)]
    refused = DataError("INSERT", {}, Exception("value out of range"))
    _failing_on(monkeypatch, first.provider_reference or "", refused)

    inbox.drain(db.sessions, 10, lambda: None, lambda _: None, utcnow)

    assert [_row(db, r).state for r in rows] == [InboundState.REJECTED, InboundState.APPLIED]
    assert _delivered(db, second)


def test_an_unexpected_error_hands_the_row_on_and_the_batch_goes_on(
    committed_pg: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = committed_pg
    first, second = _sent(db, test_settings, 2)
    rows = [_good(db, first), _good(db, second)]
    _failing_on(monkeypatch, first.provider_reference or "", RuntimeError("a bug"))
    handed: list[int] = []

    inbox.drain(db.sessions, 10, lambda: None, handed.append, utcnow)

    assert handed == [rows[0]]
    assert _row(db, rows[0]).state is InboundState.RECEIVED  # retried alone, not rejected yet
    assert _row(db, rows[1]).state is InboundState.APPLIED
    with pytest.raises(RuntimeError):
        inbox.apply(db.sessions, rows[0], final=False, now=utcnow())
    assert inbox.apply(db.sessions, rows[0], final=True, now=utcnow()) is Outcome.MALFORMED
    assert _row(db, rows[0]).state is InboundState.REJECTED
    assert _row(db, rows[0]).reason == "unexpected RuntimeError while applying"


def test_two_drains_over_the_same_interactions_in_opposite_orders_do_not_deadlock(
    committed_pg: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = committed_pg
    first, second = _sent(db, test_settings, 2)

    def receipt(sent: InteractionRecord, status: str) -> int:
        body = notify_receipt(sent.provider_reference or "", str(sent.interaction_uuid), status)
        return _store_raw(db, "notify", f"{sent.provider_reference}:{status}", body)

    # Drain A takes (first, second), drain B (second, first): opposite lock orders.
    rows = [receipt(first, "delivered"), receipt(second, "delivered")]
    rows += [receipt(second, "permanent-failure"), receipt(first, "permanent-failure")]
    meet = threading.Barrier(2, timeout=3)
    real = status_events.apply
    applied: dict[int, int] = {}

    def apply(sessions: Any, event: StatusEvent, now: datetime) -> Any:
        update = real(sessions, event, now)
        me = threading.get_ident()
        applied[me] = applied.get(me, 0) + 1
        if applied[me] == 1:
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()  # each drain holds its first interaction while the other runs
        return update

    monkeypatch.setattr(status_events, "apply", apply)
    start = threading.Barrier(2)

    def drain(_: int) -> inbox.Drained:
        start.wait()
        return inbox.drain(db.sessions, 2, lambda: None, lambda _: None, utcnow)

    with ThreadPoolExecutor(2) as pool:
        drains = list(pool.map(drain, range(2)))

    assert sorted(r for d in drains for r in d.taken) == rows
    assert {_row(db, r).state for r in rows} == {InboundState.APPLIED}
