"""The bare pipeline: the fewest lines that claim, send and record durably, as a floor.

The same Celery configuration and messages as the service's dispatch, on the same tables,
broker and stub provider, written with nothing else: raw psycopg2 with a connection per
thread, one pooled HTTP session, no ORM, no sealing, no metrics, no logging. What the service
spends beyond this, per message, is what its guarantees and its code cost.

Like the service, it commits the claim and its ``attempt_started`` event before the provider
call and records SENT with its event afterwards, each write naming the state it expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from typing import Any

import psycopg2
import requests
from requests.adapters import HTTPAdapter

from broker.app import create_app
from config.settings import get_settings
from providers.notify import ApiKey, TokenCache

settings = get_settings()
app = create_app(settings)
app.conf.include = []

CLAIM = """
WITH claimed AS (
    INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel, status,
        recipient_hash, template_key, batch_id, attempt_count, claim_expires_at,
        created_at, updated_at)
    VALUES (%s, %s, %s, 'email', 'pending', %s, %s, %s, 1,
        clock_timestamp() + interval '300 seconds', now(), now())
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
INSERT INTO interaction_events (interaction_id, kind, to_status, source, attempt,
    occurred_at, recorded_at)
SELECT id, 'attempt_started', 'pending', 'dispatch', 1, now(), now() FROM claimed
RETURNING interaction_id
"""
SENT = """
WITH sent AS (
    UPDATE interactions SET status = 'sent', provider = 'notify', provider_reference = %s,
        notify_reference = %s, claim_expires_at = NULL, sent_at = now(), updated_at = now()
    WHERE id = %s AND status = 'pending'
    RETURNING id
)
INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome, source,
    attempt, provider, occurred_at, recorded_at)
SELECT id, 'status_changed', 'pending', 'sent', 'applied', 'dispatch', 1, 'notify', now(), now()
FROM sent
"""

_local = threading.local()
_http = requests.Session()
_http.trust_env = False
_http.mount("http://", HTTPAdapter(pool_maxsize=settings.worker_concurrency, max_retries=0))
_key = settings.notify_api_key.get_secret_value() if settings.notify_api_key else ""
_tokens = TokenCache(ApiKey.parse(_key)) if _key else None
_url = settings.notify_base_url.rstrip("/") + "/v2/notifications/email"


def _connection() -> Any:
    """This thread's connection, opened on first use (after the worker's fork)."""
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed or getattr(_local, "pid", None) != os.getpid():
        dsn = str(settings.database_url).replace("postgresql+psycopg2://", "postgresql://")
        connection = _local.connection = psycopg2.connect(dsn)
        _local.pid = os.getpid()
    return connection


@app.task(name="tasks.dispatch", bind=True, ignore_result=True, acks_late=True)
def dispatch(
    self: Any,
    *,
    idempotency_key: str,
    customer_id: str,
    template_key: str,
    payload: dict[str, Any] | None = None,
    recipient: str | None = None,
    batch_id: str | None = None,
    **_: Any,
) -> None:
    """Claim (with its event) in one transaction, POST, record SENT (with its event) in another."""
    reference = uuid.uuid4()
    digest = hashlib.sha256((recipient or "").encode()).hexdigest()
    connection = _connection()
    with connection, connection.cursor() as cursor:
        cursor.execute(
            CLAIM, (str(reference), customer_id, idempotency_key, digest, template_key, batch_id)
        )
        row = cursor.fetchone()
    if row is None:
        return  # another attempt holds or finished the key
    assert _tokens is not None, "INTERACTIONS_NOTIFY_API_KEY must be set"
    response = _http.post(
        _url,
        data=json.dumps(
            {
                "email_address": recipient,
                "template_id": settings.notify_templates[template_key],
                "personalisation": payload or {},
                "reference": str(reference),
            }
        ),
        headers={"Authorization": f"Bearer {_tokens.token()}", "Content-Type": "application/json"},
        timeout=(3, 10),
    )
    response.raise_for_status()
    with connection, connection.cursor() as cursor:
        cursor.execute(SENT, (response.json()["id"], str(reference), row[0]))
