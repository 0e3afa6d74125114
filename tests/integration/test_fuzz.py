"""Fuzzing the doors of the service: dispatch arguments, CSV rows, webhook bodies.

No input may raise anything but InvalidInput, answer a 500, or leave a half-written row.
CI runs a bounded number of inputs; ``HYPOTHESIS_PROFILE=fuzz`` runs many more on demand.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import sessionmaker

from config.settings import Settings
from models import CustomerInteraction
from models.session import build_engine
from providers.registry import ProviderRegistry
from services.errors import InvalidInput
from services.sending.batches import BatchProducer, read_csv
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.fakes import FakeProvider
from tests.integration.test_batches import RecordingPublisher
from tests.integration.test_webhooks import webhook_settings
from tests.webhook_fixtures import TOKEN_A, RecordingQueue
from workers.webhooks import create_app

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEXT = st.text(max_size=300) | st.sampled_from(["", " ", "\r\n", "\x00", "'; DROP TABLE x;--"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
ARGUMENTS = st.fixed_dictionaries(
    {
        "customer_id": TEXT | st.from_regex(r"\AC-[0-9]{1,6}\Z"),
        "channel": st.sampled_from(["email", "sms", "system", "phone", "EMAIL", "fax"]) | TEXT,
        "template_key": st.sampled_from(["welcome", "{{7*7}}", ""]) | TEXT,
        "payload": st.none()
        | st.dictionaries(st.text(max_size=20), JSON_VALUES, max_size=6)
        | JSON_VALUES,
        "idempotency_key": TEXT | st.uuids().map(str),
        "recipient": st.none() | TEXT | st.emails() | st.from_regex(r"\A\+1613555[0-9]{4}\Z"),
    }
)


def _complete(db: Database) -> None:
    """Every row is either settled or held under a live claim: nothing half-written."""
    with db.sessions() as session:
        rows = session.scalars(sa.select(CustomerInteraction)).all()
    for row in rows:
        assert row.attempt_count >= 1
        if row.status.value == "pending":
            assert row.claim_expires_at is not None
        if row.status.value == "failed":
            assert row.failure_reason
        if row.status.value == "sent":
            assert row.provider_reference and row.sent_at


@pytest.fixture(params=["postgresql", "sqlite"])
def fuzz_db(
    request: pytest.FixtureRequest, tmp_path: Path, test_settings: Settings
) -> Iterator[Database]:
    """Real commits: thousands of examples would exhaust one transaction's locks."""
    if request.param == "postgresql":
        yield request.getfixturevalue("committed_pg")
        return
    path = tmp_path / "fuzz.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    engine = build_engine(f"sqlite:///{path}", test_settings)
    yield Database("sqlite", sessionmaker(bind=engine, expire_on_commit=False))
    engine.dispose()


@pytest.fixture
def fuzz_service(
    fuzz_db: Database, provider: FakeProvider, test_settings: Settings
) -> CommunicationService:
    return CommunicationService(fuzz_db.sessions, ProviderRegistry.single(provider), test_settings)


@given(arguments=ARGUMENTS)
def test_dispatch_never_fails_but_with_invalid_input(
    fuzz_service: CommunicationService, fuzz_db: Database, arguments: dict[str, Any]
) -> None:
    service, db = fuzz_service, fuzz_db
    before = db.counts()["interactions"]
    try:
        service.dispatch(**arguments)
    except InvalidInput:
        assert db.counts()["interactions"] == before
    _complete(db)


CSV_LINES = st.lists(
    st.binary(max_size=80) | st.text(alphabet=string.printable, max_size=80).map(str.encode),
    max_size=12,
)


@given(lines=CSV_LINES)
def test_any_csv_body_is_read_or_rejected_row_by_row(
    fuzz_db: Database, test_settings: Settings, lines: list[bytes]
) -> None:
    db = fuzz_db
    source = io.BytesIO(b"customer_id,recipient,name\n" + b"\n".join(lines))
    publisher = RecordingPublisher()
    report = BatchProducer(db.sessions, publisher, test_settings).run(
        "fuzz", "email", "welcome", read_csv(source)
    )
    assert (
        report.enqueued + report.rejected + report.duplicates + report.already_sent == report.rows
    )
    assert len(publisher.messages) == report.enqueued


BODIES = (
    st.binary(max_size=300)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {"id": TEXT, "reference": TEXT, "status": TEXT | st.sampled_from(["delivered", "opened"])},
        optional={"completed_at": TEXT, "sent_at": TEXT},
    ).map(lambda v: json.dumps(v).encode())
)


@given(
    body=BODIES,
    signed=st.booleans(),
    header=st.text(alphabet=string.printable.strip(), max_size=40),
)
def test_no_webhook_body_gets_a_500(
    fuzz_db: Database, test_settings: Settings, body: bytes, signed: bool, header: str
) -> None:
    db = fuzz_db
    app = create_app(webhook_settings(test_settings), RecordingQueue(), db.sessions)
    client = app.test_client()
    if signed:
        headers = {"webhook-id": header, "webhook-timestamp": header, "webhook-signature": header}
        answer = client.post("/callbacks/signed", data=body, headers=headers)
        assert answer.status_code in (401, 413)
    else:
        answer = client.post(
            "/callbacks/notify", data=body, headers={"Authorization": f"Bearer {TOKEN_A}"}
        )
        assert answer.status_code in (200, 202, 400, 413)
