"""One canary through a batch, a webhook and a failure: personal data shows up nowhere."""

from __future__ import annotations

import base64
import json
import logging
import subprocess

import pytest
import redis
import requests
import sqlalchemy as sa
from pydantic import SecretStr

from devtools.processes import wait_until
from models import CustomerInteraction, InteractionEvent
from providers.registry import ProviderRegistry
from services.callbacks.signatures import token_sha256
from services.sending.batches import BatchProducer, RecipientRow
from services.sending.communication import CommunicationService
from tests.e2e.conftest import Pipeline
from tests.fakes import FakeProvider
from tests.webhook_fixtures import SECRET_A, signed_request

pytestmark = pytest.mark.e2e
CANARY_ADDRESS = "canary.7f3a@example.org"
REJECTED_ADDRESS = "canary.rejectme@example.org"
CANARY_TEXT = "CANARY-BODY-91x"
CANARY_SUBJECT = "CANARY-SUBJECT-52q"
# Refused before sending (no dot in the domain): kept sealed, for the console to read back.
REFUSED_ADDRESS = "canary.typo8c@exampleorg"
CANARIES = (
    CANARY_ADDRESS,
    REJECTED_ADDRESS,
    REFUSED_ADDRESS,
    CANARY_TEXT,
    CANARY_SUBJECT,
    "canary.7f3a",
    "rejectme",
    "typo8c",
)
TOKEN = "canary-callback-token-1a2b3c"


def _bounce_recorded(pipeline: Pipeline) -> bool:
    with pipeline.sessions() as session:
        details = session.scalars(
            sa.select(InteractionEvent.detail).where(InteractionEvent.source == "callback:signed")
        ).all()
    return any("5.1.1" in json.dumps(detail) for detail in details)


def _absent(where: str, text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} appears in {where}"


def test_personal_data_never_leaves_the_sealed_columns(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pipeline.settings = pipeline.settings.model_copy(
        update={"webhook_signing_secrets": [SecretStr(SECRET_A)]}
    )
    webhooks = pipeline.start_webhooks(token_sha256(TOKEN))
    pipeline.stub.configure(
        callback_url=f"{webhooks.url}/callbacks/notify",
        callback_token=TOKEN,
        callback_statuses=["delivered", "opened"],
        reject_recipients_containing="rejectme",
    )
    rows = [
        RecipientRow(2, "C-1", CANARY_ADDRESS, {"name": CANARY_TEXT, "subject": CANARY_SUBJECT}),
        RecipientRow(3, "C-2", REJECTED_ADDRESS, {"name": CANARY_TEXT}),
        RecipientRow(4, "C-3", "plain@example.org", {"name": "Plain"}),
    ]
    BatchProducer(pipeline.sessions, pipeline.publisher, pipeline.settings).run(
        "canary", "email", "welcome", rows
    )
    broker = redis.Redis.from_url(pipeline.settings.resolved_broker_url)
    queued = [json.loads(m) for m in broker.lrange("dispatch", 0, -1)]
    assert len(queued) == 3
    for message in queued:
        _absent("the displayed task arguments", json.dumps(message["headers"]))
        assert CANARY_TEXT in base64.b64decode(message["body"]).decode() or (
            "Plain" in base64.b64decode(message["body"]).decode()
        ), "the message itself carries what the worker needs"

    pipeline.start_worker()
    wait_until(
        lambda: pipeline.statuses("canary") == {"opened": 2, "failed": 1}, 60, "2 OPENED, 1 FAILED"
    )
    with pipeline.sessions() as session:
        failed = session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.status == "failed")
        ).one()
    assert failed.recipient == REJECTED_ADDRESS, "the service itself can still read it"
    assert failed.failure_reason and "400" in failed.failure_reason
    _absent("failure_reason", failed.failure_reason)
    service = CommunicationService(
        pipeline.sessions, ProviderRegistry.single(FakeProvider()), pipeline.settings
    )
    refused = service.dispatch("C-4", "email", "welcome", {}, "canary-typo", REFUSED_ADDRESS)
    assert refused.status.value == "failed" and refused.interaction.recipient == REFUSED_ADDRESS

    # A late bounce whose reason quotes the address: kept in the history, without the address.
    with pipeline.sessions() as session:
        opened = session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.customer_id == "C-1")
        ).one()
    assert opened.subject == CANARY_SUBJECT, "the rendered subject is kept, sealed"
    quoted = f"550 5.1.1 <{CANARY_ADDRESS}>: Recipient address rejected"
    body, headers = signed_request(SECRET_A, str(opened.interaction_uuid), "failed", reason=quoted)
    answer = requests.post(
        f"{webhooks.url}/callbacks/signed", data=body, headers=headers, timeout=5
    )
    assert answer.status_code == 202, answer.text
    wait_until(lambda: _bounce_recorded(pipeline), 30, "the late bounce in the history")

    for worker in pipeline.workers:
        worker.stop()
    for server in pipeline.servers:
        server.stop()
    for log in pipeline.log_dir.glob("*.log"):
        _absent(log.name, log.read_text())
    _absent("the test process's logs", caplog.text)

    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            pipeline.settings.resolved_database_url.replace("+psycopg2", ""),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "canary" in dump, "the dump holds the batch (its id is not personal)"
    _absent("pg_dump", dump)
