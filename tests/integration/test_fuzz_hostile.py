"""A fuzz campaign over the whole HTTP surface with hostile strings: never a 5xx, never a poison.

Both webhook routes get signed or authenticated bodies whose values hold NUL, lone surrogates,
control and bidi characters, huge numbers and dates, deep nesting and repeated keys; after each
one a valid event is posted and the inbox drained, and that event must be applied. Every
console form gets the same strings, percent-encoded as raw bytes. CI runs a few hundred
inputs; ``FUZZ_EXAMPLES=10000`` is the long run (its result is in the README).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote_from_bytes

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from models import InboundEvent
from models.base import utcnow
from models.inbound import InboundState
from providers.registry import ProviderRegistry
from services.callbacks import inbox
from services.records import InteractionRecord
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue, console_settings, sign_in, token_of
from tests.factories import send_email
from tests.fakes import FakeProvider
from tests.integration.test_poison import notify_headers, signed_headers
from tests.integration.test_webhooks import webhook_settings
from tests.webhook_fixtures import SECRET_A, RecordingQueue, signed_request
from workers import console, webhooks

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

NASTY = st.sampled_from(
    ("\x00", "\ud800", "\udfff", "\u202e", "\u2066", "\u200f", "\x1b[2J", "\x7f", "\ufeff")
) | st.sampled_from(
    ("\u0085", "\r\n", "\t", "'; DROP TABLE interactions;--", "{{7*7}}", "%s%n", "\U0010ffff")
)
HOSTILE = st.lists(
    NASTY | st.text(max_size=12) | st.characters(categories=["Cs", "Cc", "Cf"]), max_size=8
).map("".join)
TIMES = (
    st.sampled_from(
        ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-01-01T10:00:00", "")
    )
    | st.sampled_from(
        ("1970-01-01T00:00:00Z", "2026-13-40T99:99:99Z", "+275760-09-13T00:00:00Z", "Z")
    )
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
)
NUMBERS = st.integers(min_value=-(10**30), max_value=10**30).map(str) | st.sampled_from(
    ["9" * 5000, "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-0"]
)


def text(value: str) -> str:
    """A JSON string for ``value``, lone surrogates escaped as \\uXXXX."""
    return json.dumps(value, ensure_ascii=True)


LEAF = HOSTILE.map(text) | NUMBERS | TIMES.map(text) | st.sampled_from(["null", "true", "{}"])
DEEP = st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n)
VALUE = LEAF | DEEP


def body_of(pairs: list[tuple[str, str]]) -> str:
    """A JSON object written out by hand, so it may repeat a key."""
    return "{" + ",".join(f"{text(k)}:{v}" for k, v in pairs) + "}"


def fields(names: list[str], valid: dict[str, str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Each of ``names`` with a valid or hostile value, maybe twice, with hostile extras."""
    one = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), st.just(text(valid[name])) | VALUE)
    )
    base = st.tuples(*(st.tuples(st.just(n), st.just(text(valid[n])) | VALUE) for n in names))
    return st.tuples(base.map(list), st.lists(one | st.tuples(HOSTILE, VALUE), max_size=3)).map(
        lambda parts: parts[0] + parts[1]
    )


NOTIFY_VALID = {
    "id": "N-fuzz",
    "reference": str(uuid.uuid4()),
    "status": "delivered",
    "completed_at": "2026-01-01T10:00:00Z",
    "sent_at": "2026-01-01T09:00:00Z",
}
NOTIFY_BODIES = fields(list(NOTIFY_VALID), NOTIFY_VALID).map(body_of)
DATA_VALID = {"reference": "R-fuzz", "status": "delivered", "occurred_at": "", "reason": "x"}
SIGNED_BODIES = st.tuples(
    fields(list(DATA_VALID), DATA_VALID).map(body_of) | VALUE,
    st.tuples(HOSTILE, VALUE) | st.tuples(st.just("type"), HOSTILE.map(text)),
).map(lambda parts: body_of([("type", text("message.status")), ("data", parts[0]), parts[1]]))
# Now and then the bytes themselves are not UTF-8 (a lone surrogate written raw).
RAW = st.sampled_from([b"", b'{"id": "\xed\xa0\x80"}', b"\xff\xfe", b'{"a": "\x00"}'])


@pytest.fixture
def target(committed_pg: Database, test_settings: Settings) -> InteractionRecord:
    """One email sent, for the valid event posted after each hostile one."""
    registry = ProviderRegistry.single(FakeProvider())
    service = CommunicationService(committed_pg.sessions, registry, test_settings)
    return send_email(service).interaction


@pytest.fixture
def webhook(committed_pg: Database, test_settings: Settings) -> Iterator[FlaskClient]:
    roomy = webhook_settings(test_settings, webhook_max_body_bytes=65536)
    app = webhooks.create_app(roomy, RecordingQueue(), committed_pg.sessions)
    with app.test_client() as client:
        yield client


def _still_applies(client: FlaskClient, db: Database, target: InteractionRecord) -> None:
    """A valid event posted now is applied by the next drains: the queue is not poisoned."""
    webhook_id = f"msg_{uuid.uuid4().hex}"
    body, headers = signed_request(SECRET_A, str(target.interaction_uuid), "delivered", webhook_id)
    assert client.post("/callbacks/signed", data=body, headers=headers).status_code == 202
    while inbox.drain(db.sessions, 50, lambda: None, lambda _: None, utcnow).taken:
        pass
    with db.sessions() as session:
        state = session.scalar(
            sa.select(InboundEvent.state).where(InboundEvent.event_id == webhook_id)
        )
    assert state is InboundState.APPLIED


@FUZZ
@given(body=NOTIFY_BODIES.map(lambda b: b.encode("utf-8", "surrogatepass")) | RAW)
def test_the_notify_route_never_answers_5xx_nor_poisons_the_queue(
    webhook: FlaskClient, committed_pg: Database, target: InteractionRecord, body: bytes
) -> None:
    answer = webhook.post("/callbacks/notify", data=body, headers=notify_headers())
    assert answer.status_code < 500, answer.get_data(as_text=True)
    _still_applies(webhook, committed_pg, target)


@FUZZ
@given(body=SIGNED_BODIES.map(lambda b: b.encode("utf-8", "surrogatepass")) | RAW)
def test_the_signed_route_never_answers_5xx_nor_poisons_the_queue(
    webhook: FlaskClient, committed_pg: Database, target: InteractionRecord, body: bytes
) -> None:
    # Bytes that are not UTF-8 cannot be signed as Standard Webhooks text: those get a 401.
    headers = signed_headers(body.decode("utf-8", "replace").encode())
    answer = webhook.post("/callbacks/signed", data=body, headers=headers)
    assert answer.status_code < 500, answer.get_data(as_text=True)
    _still_applies(webhook, committed_pg, target)


@pytest.fixture
def console_app(
    committed_pg: Database, test_settings: Settings
) -> Iterator[tuple[Flask, FlaskClient, str, str]]:
    """The console, a resender signed in with its form token, and a failed interaction."""
    registry = ProviderRegistry.single(FakeProvider())
    service = CommunicationService(committed_pg.sessions, registry, test_settings)
    failed = send_email(service, customer_id="C-FUZZ", recipient="not-an-address").interaction
    app = console.create_app(
        console_settings(test_settings), sessions=committed_pg.sessions, publisher=CapturedQueue()
    )
    client, token = sign_in(app, "r.esender")
    yield app, client, token, f"/customers/C-FUZZ/interactions/{failed.interaction_uuid}"
    with committed_pg.sessions() as session, session.begin():
        # The fuzzed sign-ins count as failures: left behind, they would throttle later tests.
        session.execute(sa.text("DELETE FROM staff_sign_in_failures"))
        session.execute(sa.text("DELETE FROM staff_sessions"))


def raw(value: str) -> str:
    """``value`` percent-encoded byte for byte, a lone surrogate as its raw (invalid) bytes."""
    return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="")


def form(values: dict[str, str], token: str) -> bytes:
    """A form body with each value percent-encoded as raw bytes, surrogates and all."""
    pairs = {**values, "csrf_token": token}
    return "&".join(f"{raw(k)}={raw(v)}" for k, v in pairs.items()).encode()


FORMS = st.sampled_from(["customer", "find", "notes", "resend", "login", "history"])


@FUZZ
@given(which=FORMS, first=HOSTILE, second=HOSTILE, third=HOSTILE | TIMES | NUMBERS)
def test_no_console_form_answers_5xx(
    console_app: tuple[Flask, FlaskClient, str, str],
    which: str,
    first: str,
    second: str,
    third: str,
) -> None:
    app, client, token, interaction = console_app
    path_part = raw(first)
    encoded = "application/x-www-form-urlencoded"
    if which == "login":
        anonymous = app.test_client()
        login_token = token_of(anonymous.get("/login").get_data(as_text=True))
        values = {"username": first, "password": second}
        answer = anonymous.post("/login", data=form(values, login_token), content_type=encoded)
    elif which == "history":
        answer = client.get(f"/customers/{path_part}?cursor={raw(second)}&archived={raw(third)}")
    else:
        path, values = {
            "customer": ("/customer", {"customer_id": first}),
            "find": ("/find", {"channel": second, "address": first}),
            "notes": (f"/customers/{path_part}/notes", {"content": second}),
            "resend": (
                f"{interaction}/resend",
                {"address": first, "reason": second, "seen_resends": third},
            ),
        }[which]
        answer = client.post(path, data=form(values, token), content_type=encoded)
    assert answer.status_code < 500, (which, answer.status_code)
