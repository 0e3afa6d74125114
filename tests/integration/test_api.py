"""The HTTP API through Flask's test client: auth, scopes, problems, idempotency, batches, reads."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from config.settings import Settings
from models import ApiKey, CustomerInteraction, InteractionEvent
from models.enums import InteractionStatus
from providers.registry import ProviderRegistry
from services.clients.identity import Scope
from services.clients.key_cache import PREFIX as KEY_PREFIX
from services.clients.key_cache import KeyCache
from services.clients.keys import ApiKeys
from services.clients.rate import RateLimit
from services.clients.tokens import TokenVerifier
from services.sending.communication import CommunicationService
from tests.api_fixtures import RecordingPublisher, bearer, new_key
from tests.conftest import Database
from tests.fakes import FakeProvider
from workers.api import create_app
from workers.api_openapi import document
from workers.cli_api import openapi_text

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
PROBLEM = "application/problem+json"


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def keys(pg_db: Database) -> ApiKeys:
    return ApiKeys(pg_db.sessions)


def _app(pg_db: Database, settings: Settings, publisher: RecordingPublisher, **parts: Any) -> Any:
    return create_app(
        settings,
        sessions=pg_db.sessions,
        publisher=publisher,
        api_keys=parts.pop("api_keys", ApiKeys(pg_db.sessions)),
        api_rate_limit=parts.pop("api_rate_limit", RateLimit(None, 1, 60)),
        api_tokens=parts.pop("api_tokens", None),
        **parts,
    )


@pytest.fixture
def client(
    pg_db: Database, test_settings: Settings, publisher: RecordingPublisher
) -> Iterator[FlaskClient]:
    with _app(pg_db, test_settings, publisher).test_client() as test_client:
        yield test_client


@pytest.fixture
def secret(keys: ApiKeys) -> str:
    return new_key(keys, "benefits-app")


def message(**changes: Any) -> dict[str, Any]:
    body = {
        "customer_id": "C-1",
        "channel": "email",
        "template_key": "welcome",
        "payload": {"name": "Ada"},
        "recipient": "ada@example.org",
    }
    body.update(changes)
    return body


def test_the_document_is_valid_openapi_31_and_the_checked_in_copy_is_current() -> None:
    built = document(create_app(Settings(environment="test")))
    validate(built)
    assert built["openapi"] == "3.1.0"
    assert (ROOT / "docs" / "openapi.json").read_text() == openapi_text(), (
        "docs/openapi.json is stale: run interactions api openapi --output docs/openapi.json"
    )


def test_the_document_is_served_with_a_browsable_page(client: FlaskClient) -> None:
    assert client.get("/v1/openapi.json").json["openapi"] == "3.1.0"  # type: ignore[index]
    assert "/v1/openapi.json" in client.get("/v1/docs").get_data(as_text=True)


def test_a_message_is_recorded_pending_unclaimed_and_published_once(
    client: FlaskClient, secret: str, publisher: RecordingPublisher, pg_db: Database
) -> None:
    answer = client.post(
        "/v1/messages", json=message(), headers={**bearer(secret), "Idempotency-Key": "k-1"}
    )
    assert answer.status_code == 202
    body = answer.json
    assert body is not None and body["status"] == "pending"
    assert answer.headers["Location"] == f"/v1/interactions/{body['interaction_uuid']}"
    assert [m["idempotency_key"] for m in publisher.messages] == ["k-1"]
    with pg_db.sessions() as session:
        row = session.scalars(sa.select(CustomerInteraction)).one()
        event = session.scalars(sa.select(InteractionEvent)).one()
    assert (row.status, row.claim_expires_at, row.attempt_count) == ("pending", None, 0)
    assert (event.source, event.actor, event.to_status) == ("api", "benefits-app", "pending")

    again = client.post("/v1/messages", json=message(idempotency_key="k-1"), headers=bearer(secret))
    assert again.status_code == 200
    assert again.json["interaction_uuid"] == body["interaction_uuid"]  # type: ignore[index]
    assert len(publisher.messages) == 1


def test_the_dispatch_takes_the_accepted_row_over_as_attempt_one(
    client: FlaskClient,
    secret: str,
    publisher: RecordingPublisher,
    pg_db: Database,
    test_settings: Settings,
) -> None:
    client.post("/v1/messages", json=message(idempotency_key="k-2"), headers=bearer(secret))
    provider = FakeProvider()
    service = CommunicationService(pg_db.sessions, ProviderRegistry.single(provider), test_settings)
    result = service.dispatch(**{k: v for k, v in publisher.messages[0].items() if k != "batch_id"})
    assert result.status is InteractionStatus.SENT
    assert result.interaction.attempt_count == 1
    assert provider.call_count == 1
    detail = client.get(
        f"/v1/interactions/{result.interaction.interaction_uuid}", headers=bearer(secret)
    )
    kinds = [e["kind"] for e in detail.json["events"]]  # type: ignore[index]
    assert kinds == ["status_changed", "attempt_started", "status_changed"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "pigeon"}, "channel"),
        ({"channel": "phone"}, "channel"),
        ({"customer_id": ""}, "customer_id"),
        ({"recipient": "not an address"}, "recipient"),
        ({"payload": "text"}, "payload"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_field_is_a_422_problem_naming_it(
    client: FlaskClient, secret: str, changes: dict[str, Any], field: str
) -> None:
    answer = client.post(
        "/v1/messages", json=message(idempotency_key="k-3", **changes), headers=bearer(secret)
    )
    assert answer.status_code == 422
    assert answer.mimetype == PROBLEM
    assert field in [e["field"] for e in answer.json["errors"]]  # type: ignore[index]
    assert "not an address" not in answer.get_data(as_text=True)


def test_no_key_and_not_json_and_a_reused_key(client: FlaskClient, secret: str) -> None:
    assert client.post("/v1/messages", json=message(), headers=bearer(secret)).status_code == 422
    broken = client.post("/v1/messages", data=b"{", headers=bearer(secret))
    assert (broken.status_code, broken.mimetype) == (400, PROBLEM)
    client.post("/v1/messages", json=message(idempotency_key="k-4"), headers=bearer(secret))
    other = client.post(
        "/v1/messages",
        json=message(idempotency_key="k-4", customer_id="C-2"),
        headers=bearer(secret),
    )
    assert other.status_code == 422
    assert other.json["title"] == "Idempotency key reused"  # type: ignore[index]


def test_keys_missing_wrong_revoked_out_of_scope_and_a_second_key(
    client: FlaskClient, keys: ApiKeys
) -> None:
    first = new_key(keys, "crm", Scope.READ)
    second = new_key(keys, "crm", Scope.READ)
    path = "/v1/customers/C-1/interactions"
    assert client.get(path).status_code == 401
    assert client.get(path).headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(path, headers=bearer(first[:-1] + "x")).status_code == 401
    assert client.get(path, headers=bearer("nonsense")).status_code == 401
    assert client.get(path, headers=bearer(first)).status_code == 200
    denied = client.post("/v1/messages", json=message(idempotency_key="k-5"), headers=bearer(first))
    assert (denied.status_code, denied.mimetype) == (403, PROBLEM)
    keys.revoke(first.split("_")[1])
    assert client.get(path, headers=bearer(first)).status_code == 401
    assert client.get(path, headers=bearer(second)).status_code == 200
    listed = {k.key_id: k for k in keys.listing("crm")}
    assert listed[second.split("_")[1]].last_used_at is not None


def test_keys_are_stored_only_as_hashes(keys: ApiKeys, pg_db: Database) -> None:
    secret = new_key(keys, "hash-check")
    with pg_db.sessions() as session:
        stored = session.scalars(sa.select(ApiKey).where(ApiKey.client == "hash-check")).one()
    assert secret not in json.dumps([stored.key_id, stored.secret_sha256, stored.scopes])


def test_timeline_detail_and_a_note_by_the_calling_client(client: FlaskClient, secret: str) -> None:
    note = client.post(
        "/v1/customers/C-9/notes", json={"content": "called about the form"}, headers=bearer(secret)
    )
    assert note.status_code == 201
    assert note.json["author"] == "benefits-app"  # type: ignore[index]
    for n in range(3):
        client.post(
            "/v1/messages",
            json=message(customer_id="C-9", idempotency_key=f"t-{n}"),
            headers=bearer(secret),
        )
    page = client.get("/v1/customers/C-9/interactions?limit=2", headers=bearer(secret)).json
    assert page is not None and len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(page["links"]["next"], headers=bearer(secret)).json
    assert rest is not None and len(rest["items"]) == 2 and rest["next_cursor"] is None
    phone = client.get("/v1/customers/C-9/interactions?channel=phone", headers=bearer(secret)).json
    assert [i["channel"] for i in phone["items"]] == ["phone"]  # type: ignore[index]
    detail = client.get(note.headers["Location"], headers=bearer(secret)).json
    assert detail["body_content"] == "called about the form"  # type: ignore[index]
    missing = client.get(f"/v1/interactions/{uuid.uuid4()}", headers=bearer(secret))
    assert (missing.status_code, missing.mimetype) == (404, PROBLEM)
    bad = client.get("/v1/customers/C-9/interactions?limit=0", headers=bearer(secret))
    assert bad.status_code == 422


def test_a_batch_upload_reports_rejected_lines_and_resumes(
    client: FlaskClient, secret: str, publisher: RecordingPublisher
) -> None:
    lines = [
        json.dumps({"customer_id": f"B-{n}", "recipient": f"p{n}@example.org", "payload": {"n": n}})
        for n in range(5)
    ]
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({"customer_id": "B-x", "recipient": "nope"}))
    body = ("\n".join(lines) + "\n").encode()
    url = "/v1/batches?batch_id=b-1&channel=email&template_key=welcome"
    headers = {**bearer(secret), "Content-Type": "application/x-ndjson"}
    report = client.post(url, data=body, headers=headers).json
    assert report is not None
    assert (report["rows"], report["enqueued"], report["rejected"]) == (7, 5, 2)
    assert [r["line"] for r in report["rejections"]] == [3, 5]
    assert "nope" not in json.dumps(report)
    state = client.get("/v1/batches/b-1", headers=bearer(secret)).json
    assert state is not None and state["state"] == "sending" and state["rows"] == 7
    assert state["started_by"] == "benefits-app"  # the calling client, not "api:..."
    paused = client.post("/v1/batches/b-1/pause", json={"reason": "check"}, headers=bearer(secret))
    assert paused.json["after"] == "paused"  # type: ignore[index]
    assert client.post("/v1/batches/nope/pause", json={}, headers=bearer(secret)).status_code == 404
    csv_body = b"customer_id,recipient,name\nB-0,p0@example.org,Ada\n"
    again = client.post(url, data=csv_body, headers={**bearer(secret), "Content-Type": "text/csv"})
    assert again.status_code == 200
    wrong = client.post(url, data=b"x", headers={**bearer(secret), "Content-Type": "text/plain"})
    assert wrong.status_code == 415


def test_a_client_over_its_rate_gets_429_with_retry_after(
    pg_db: Database, test_settings: Settings, publisher: RecordingPublisher, keys: ApiKeys
) -> None:
    store = redis.Redis.from_url(BROKER)
    limit = RateLimit(store, 3, 60)
    app = _app(pg_db, test_settings, publisher, api_rate_limit=limit)
    busy, calm = (
        new_key(keys, f"busy-{uuid.uuid4().hex[:8]}"),
        new_key(keys, f"calm-{uuid.uuid4().hex[:8]}"),
    )
    with app.test_client() as test_client:
        codes = [
            test_client.get("/v1/customers/C-1/interactions", headers=bearer(busy)).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        refused = test_client.get("/v1/customers/C-1/interactions", headers=bearer(busy))
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert (
            test_client.get("/v1/customers/C-1/interactions", headers=bearer(calm)).status_code
            == 200
        )


class StaticKeys:
    """A JWKS client that already holds the issuer's one key."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def get_signing_key_from_jwt(self, token: str) -> Any:
        return self


def test_identity_provider_tokens_by_issuer_audience_and_expiry(
    pg_db: Database, test_settings: Settings, publisher: RecordingPublisher
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = TokenVerifier(
        "https://idp.example",
        "interactions",
        StaticKeys(private.public_key()),  # type: ignore[arg-type]
        ["RS256"],
        "azp",
        "scope",
    )
    app = _app(pg_db, test_settings, publisher, api_tokens=verifier)

    def token(**changes: Any) -> str:
        claims = {
            "iss": "https://idp.example",
            "aud": "interactions",
            "azp": "payments",
            "scope": "read other:thing",
            "exp": int(time.time()) + 60,
        }
        claims.update(changes)
        return jwt.encode(claims, private, algorithm="RS256")

    path = "/v1/customers/C-1/interactions"
    with app.test_client() as test_client:
        assert test_client.get(path, headers=bearer(token())).status_code == 200
        assert test_client.get(path, headers=bearer(token(aud="other"))).status_code == 401
        assert test_client.get(path, headers=bearer(token(iss="https://evil"))).status_code == 401
        assert (
            test_client.get(path, headers=bearer(token(exp=int(time.time()) - 120))).status_code
            == 401
        )
        sent = test_client.post(
            "/v1/messages", json=message(idempotency_key="j-1"), headers=bearer(token())
        )
        assert sent.status_code == 403


def test_a_cached_key_is_checked_and_counted_in_redis_and_its_revocation_is_at_once(
    pg_db: Database, test_settings: Settings, publisher: RecordingPublisher
) -> None:
    store = redis.Redis.from_url(BROKER)
    # Two hosts' key checkers on the one Redis: one serves, the other revokes.
    serving, revoking = (
        ApiKeys(pg_db.sessions, cache=KeyCache(store)),
        ApiKeys(pg_db.sessions, cache=KeyCache(store)),
    )
    app = _app(
        pg_db, test_settings, publisher, api_keys=serving, api_rate_limit=RateLimit(store, 3, 60)
    )
    secret = new_key(revoking, f"cached-{uuid.uuid4().hex[:8]}")
    key_id = secret.split("_")[1]
    path = "/v1/customers/C-1/interactions"
    with app.test_client() as test_client:
        assert test_client.get(path, headers=bearer(secret)).status_code == 200
        assert store.get(f"{KEY_PREFIX}:{key_id}") is not None
        # A wrong secret for a cached key is refused and not counted against its client.
        wrong = secret[:-1] + ("x" if secret[-1] != "x" else "y")
        assert test_client.get(path, headers=bearer(wrong)).status_code == 401
        codes = [test_client.get(path, headers=bearer(secret)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert revoking.revoke(key_id)
        assert test_client.get(path, headers=bearer(secret)).status_code == 401
