"""The dispatch publisher on Redis: its own envelopes are the ones kombu would have written."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from broker.app import create_app
from broker.publisher import CeleryPublisher
from config.celery import DISPATCH_QUEUE
from config.settings import Settings
from services.sending.batches import DispatchMessage

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
VARYING = (("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
           ("properties", "delivery_tag"))  # fmt: skip


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BROKER)
    client.delete(DISPATCH_QUEUE)
    yield client
    client.delete(DISPATCH_QUEUE)
    client.close()


def _comparable(raw: bytes) -> dict[str, Any]:
    """An envelope with its random ids replaced, its body decoded; the ids checked on the way."""
    envelope: dict[str, Any] = json.loads(raw)
    task_id = envelope["headers"]["id"]
    assert envelope["headers"]["root_id"] == envelope["properties"]["correlation_id"] == task_id
    for part, name in VARYING:
        envelope[part][name] = "-"
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope


def test_envelopes_match_kombus_in_order_with_ids_only_displayed(broker: redis.Redis) -> None:
    app = create_app(Settings(environment="test", broker_url=BROKER))
    publisher = CeleryPublisher(app)
    sender = "3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
    messages = [
        DispatchMessage(f'k"{n}', f"C-{n}", "email", "welcome", {"name": "Zo\u00eb"},
                        f"p{n}@example.org", "b1", None if n else sender)
        for n in range(3)
    ]  # fmt: skip
    publisher.publish(messages)  # one LPUSH of envelopes built here
    publisher._publish(messages)  # kombu's own producer, as before
    # LPUSH puts the newest on the left; a worker takes from the right, oldest first.
    queued = [_comparable(raw) for raw in reversed(broker.lrange(DISPATCH_QUEUE, 0, -1))]
    ours, kombus = queued[:3], queued[3:]
    assert ours == kombus
    assert [e["body"][1]["idempotency_key"] for e in ours] == ['k"0', 'k"1', 'k"2']
    shown = ours[0]["headers"]["kwargsrepr"]
    assert "example.org" not in shown and "Zo" not in shown and 'k"0' in shown
    ids = [json.loads(raw)["headers"]["id"] for raw in broker.lrange(DISPATCH_QUEUE, 0, -1)]
    assert len(set(ids)) == len(ids)
