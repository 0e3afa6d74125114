"""The webhook app: authentication, limits and answers, storage before acknowledgement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from pydantic import SecretStr

from config.settings import Settings
from models import InboundEvent
from models.base import utcnow
from models.enums import InteractionStatus
from services.callbacks import inbox
from services.ledger.transitions import Outcome
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email
from tests.webhook_fixtures import (
    SECRET_A,
    SECRET_B,
    TOKEN_A,
    TOKEN_B,
    TOKEN_HASHES,
    RecordingQueue,
    notify_receipt,
    signed_request,
    stale,
)
from workers.webhooks import create_app

NOTIFY = "/callbacks/notify"
SIGNED = "/callbacks/signed"


def webhook_settings(base: Settings, **changes: object) -> Settings:
    values: dict[str, object] = {
        "webhook_notify_token_sha256": TOKEN_HASHES,
        "webhook_signing_secrets": [SecretStr(SECRET_A), SecretStr(SECRET_B)],
        "webhook_max_body_bytes": 4096,
    }
    values.update(changes)
    return base.model_copy(update=values)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def client(db: Database, test_settings: Settings, queue: RecordingQueue) -> Iterator[FlaskClient]:
    app = create_app(webhook_settings(test_settings), queue, db.sessions)
    with app.test_client() as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def stored(db: Database) -> list[InboundEvent]:
    with db.sessions() as session:
        return list(session.scalars(sa.select(InboundEvent).order_by(InboundEvent.id)))


def test_a_notify_receipt_is_stored_queued_and_applied(
    client: FlaskClient, service: CommunicationService, db: Database, queue: RecordingQueue
) -> None:
    sent = send_email(service).interaction
    body = notify_receipt(sent.provider_reference or "", str(sent.interaction_uuid))
    answer = client.post(NOTIFY, data=body, headers=bearer(TOKEN_A))
    assert answer.status_code == 202
    rows = stored(db)
    assert [r.event_id for r in rows] == [f"{sent.provider_reference}:delivered"]
    assert queue.enqueued == [rows[0].id]
    assert inbox.apply(db.sessions, rows[0].id, final=False, now=utcnow()) is Outcome.APPLIED
    assert service.get_history("C-1", 1).items[0].status is InteractionStatus.DELIVERED


def test_two_tokens_work_side_by_side_and_a_removed_one_is_refused(
    db: Database, test_settings: Settings, queue: RecordingQueue
) -> None:
    both = create_app(webhook_settings(test_settings), queue, db.sessions).test_client()
    for token in (TOKEN_A, TOKEN_B):
        body = notify_receipt(str(uuid.uuid4()), str(uuid.uuid4()))
        assert both.post(NOTIFY, data=body, headers=bearer(token)).status_code == 202
    rotated = webhook_settings(test_settings, webhook_notify_token_sha256=TOKEN_HASHES[1:])
    only_b = create_app(rotated, queue, db.sessions).test_client()
    body = notify_receipt(str(uuid.uuid4()), str(uuid.uuid4()))
    assert only_b.post(NOTIFY, data=body, headers=bearer(TOKEN_A)).status_code == 401
    assert only_b.post(NOTIFY, data=body, headers=bearer(TOKEN_B)).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN_A}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_a_bad_credential_gets_401_and_stores_nothing(
    client: FlaskClient, db: Database, headers: dict[str, str], queue: RecordingQueue
) -> None:
    answer = client.post(NOTIFY, data=notify_receipt("n-1", str(uuid.uuid4())), headers=headers)
    assert answer.status_code == 401
    assert answer.get_json() == {"status": 401, "message": "unauthenticated"}
    assert stored(db) == [] and queue.enqueued == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "n-1", "status": "exploded"}', "'status' is not a Notify status"),
        (b'{"status": "delivered"}', "'id' must be a string"),
        (b"\xff\xfe", "the body is not JSON"),
    ],
)
def test_a_malformed_body_gets_400(
    client: FlaskClient, db: Database, body: bytes, message: str
) -> None:
    answer = client.post(NOTIFY, data=body, headers=bearer(TOKEN_A))
    assert answer.status_code == 400
    assert message in answer.get_json()["message"]
    assert stored(db) == []


def test_an_oversized_body_gets_413_before_anything_else(client: FlaskClient, db: Database) -> None:
    big = b'{"id": "' + b"x" * 5000 + b'"}'
    assert client.post(NOTIFY, data=big, headers=bearer(TOKEN_A)).status_code == 413
    assert client.post(NOTIFY, data=big, headers={}).status_code == 413
    assert stored(db) == []


def test_a_content_length_claiming_too_much_gets_413(client: FlaskClient) -> None:
    answer = client.post(
        NOTIFY,
        data=b"{}",
        headers=bearer(TOKEN_A),
        environ_overrides={"CONTENT_LENGTH": "999999999"},
    )
    assert answer.status_code == 413


def test_the_same_receipt_twice_is_acknowledged_and_applied_once(
    client: FlaskClient, service: CommunicationService, db: Database, queue: RecordingQueue
) -> None:
    sent = send_email(service).interaction
    body = notify_receipt(sent.provider_reference or "", str(sent.interaction_uuid))
    assert client.post(NOTIFY, data=body, headers=bearer(TOKEN_A)).status_code == 202
    inbox.apply(db.sessions, queue.enqueued[0], final=False, now=utcnow())
    replay = client.post(NOTIFY, data=body, headers=bearer(TOKEN_A))
    assert replay.status_code == 200
    assert replay.get_json()["message"] == "already_settled"
    assert len(queue.enqueued) == 1 and len(stored(db)) == 1


def test_signed_callbacks_from_the_official_library(
    client: FlaskClient, service: CommunicationService, db: Database, queue: RecordingQueue
) -> None:
    sent = send_email(service).interaction
    for secret in (SECRET_A, SECRET_B):
        body, headers = signed_request(secret, str(sent.interaction_uuid), "delivered")
        assert client.post(SIGNED, data=body, headers=headers).status_code == 202
    outcomes = [inbox.apply(db.sessions, i, False, utcnow()) for i in queue.enqueued]
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]


@pytest.mark.parametrize(
    "case",
    ["tampered", "wrong-secret", "stale", "future", "no-id", "no-timestamp", "no-signature"],
)
def test_signed_callbacks_that_do_not_verify_get_401(
    client: FlaskClient, db: Database, case: str
) -> None:
    reference = str(uuid.uuid4())
    secret = "whsec_" + "Y" * 44 if case == "wrong-secret" else SECRET_A
    # Well past the 300 s tolerance: whole-second timestamps and a slow test run stay outside it.
    when = {"stale": stale(310), "future": stale(-310)}.get(case)
    body, headers = signed_request(secret, reference, "delivered", sent_at=when)
    if case == "tampered":
        body = body.replace(b"delivered", b"opened")
    missing = {
        "no-id": "webhook-id",
        "no-timestamp": "webhook-timestamp",
        "no-signature": "webhook-signature",
    }
    headers.pop(missing.get(case, ""), None)
    assert client.post(SIGNED, data=body, headers=headers).status_code == 401
    assert stored(db) == []


def test_a_replayed_webhook_id_is_acknowledged_without_applying_twice(
    client: FlaskClient, service: CommunicationService, db: Database, queue: RecordingQueue
) -> None:
    sent = send_email(service).interaction
    body, headers = signed_request(SECRET_A, str(sent.interaction_uuid), "opened")
    assert client.post(SIGNED, data=body, headers=headers).status_code == 202
    inbox.apply(db.sessions, queue.enqueued[0], final=False, now=utcnow())
    assert client.post(SIGNED, data=body, headers=headers).status_code == 200
    assert len(queue.enqueued) == 1
    assert service.get_history("C-1", 1).items[0].status is InteractionStatus.OPENED


def test_a_database_that_is_down_gets_503_and_the_retry_is_applied_once(
    db: Database, test_settings: Settings, service: CommunicationService
) -> None:
    sent = send_email(service).interaction
    body = notify_receipt(sent.provider_reference or "", str(sent.interaction_uuid))
    down = webhook_settings(
        test_settings, database_url="postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
    )
    failing = create_app(down, RecordingQueue()).test_client()
    answer = failing.post(NOTIFY, data=body, headers=bearer(TOKEN_A))
    assert answer.status_code == 503
    assert "try again" in answer.get_json()["message"]

    queue = RecordingQueue()
    back = create_app(webhook_settings(test_settings), queue, db.sessions).test_client()
    assert back.post(NOTIFY, data=body, headers=bearer(TOKEN_A)).status_code == 202
    assert back.post(NOTIFY, data=body, headers=bearer(TOKEN_A)).status_code == 200
    applied = [inbox.apply(db.sessions, i, False, utcnow()) for i in queue.enqueued]
    assert applied == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert service.get_history("C-1", 1).items[0].status is InteractionStatus.DELIVERED


def test_a_broker_that_is_down_gets_503_and_the_event_stays_stored(
    db: Database, test_settings: Settings
) -> None:
    class DownQueue:
        def enqueue(self, inbound_id: int) -> None:
            raise ConnectionError("broker unreachable")

    app = create_app(webhook_settings(test_settings), DownQueue(), db.sessions).test_client()
    body = notify_receipt(str(uuid.uuid4()), str(uuid.uuid4()))
    assert app.post(NOTIFY, data=body, headers=bearer(TOKEN_A)).status_code == 503
    assert [r.state.value for r in stored(db)] == ["received"]


def test_health_and_unknown_routes(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": 200, "message": "ok"}
    assert client.get("/callbacks/notify").status_code == 405
    assert client.get("/nowhere").status_code == 404


def test_control_characters_in_a_receipt_get_400(client: FlaskClient, db: Database) -> None:
    body = b'{"id": "n-\\u0000", "reference": "r", "status": "delivered"}'
    answer = client.post(NOTIFY, data=body, headers=bearer(TOKEN_A))
    assert answer.status_code == 400
    assert answer.get_json()["message"] == "'id' holds NUL or an unpaired surrogate"
    assert stored(db) == []
