"""Metrics scraped from the webhook app after a real batch match what the tables hold."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from devtools.processes import WebhookServer, Worker, wait_until
from models import CustomerInteraction, InboundEvent
from services.callbacks.signatures import token_sha256
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
CALLBACK_TOKEN = "metrics-callback-token-3e2d1c0b"
SCRAPE_TOKEN = "metrics-scrape-token-9f8e7d6c5b"
BATCH = 12

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def _scrape(webhooks: WebhookServer) -> Samples:
    status, body = webhooks.post(
        "/metrics", b"", {"Authorization": f"Bearer {SCRAPE_TOKEN}"}, method="GET"
    )
    assert status == 200, body[:300]
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def _table(pipeline: Pipeline) -> dict[str, int]:
    table = CustomerInteraction
    with pipeline.sessions() as session:

        def count(*where: sa.ColumnElement[bool]) -> int:
            query = sa.select(sa.func.count()).select_from(table).where(table.channel == "email")
            return int(session.scalar(query.where(*where)) or 0)

        return {
            "created": count(),
            "sent": count(table.sent_at.is_not(None)),
            "delivered": count(table.delivered_at.is_not(None)),
            "opened": count(table.opened_at.is_not(None)),
            "failed": count(table.status == "failed"),
            "inbox": int(session.scalar(sa.select(sa.func.count()).select_from(InboundEvent)) or 0),
        }


def test_metrics_after_a_batch_match_the_tables(pipeline: Pipeline, tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {
        **pipeline.env(),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "INTERACTIONS_METRICS_TOKEN_SHA256": json.dumps([token_sha256(SCRAPE_TOKEN)]),
        "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": json.dumps([token_sha256(CALLBACK_TOKEN)]),
    }
    webhooks = WebhookServer(env, pipeline.log_dir)
    pipeline.servers.append(webhooks)
    pipeline.stub.configure(
        callback_url=f"{webhooks.url}/callbacks/notify",
        callback_token=CALLBACK_TOKEN,
        callback_statuses=["delivered", "opened"],
        callback_duplicates=1,
        callback_shuffle=True,
        reject_recipients_containing="person3@",
    )
    worker = Worker(env, "w1", pipeline.log_dir, concurrency=4)
    pipeline.workers.append(worker)
    worker.wait_ready()

    # Earlier tests may leave callbacks in the inbox: count this batch's from here.
    inbox_before = _table(pipeline)["inbox"]
    pipeline.send_batch("metrics", BATCH)
    expected = {"opened": BATCH - 1, "failed": 1}
    wait_until(lambda: pipeline.statuses("metrics") == expected, 60, f"{expected}")
    posts = 4 * (BATCH - 1)  # delivered and opened, each posted twice
    wait_until(lambda: pipeline.stub.stats()["callbacks"]["sent"] == posts, 30, "every callback")
    wait_until(
        lambda: _table(pipeline)["inbox"] - inbox_before == posts // 2, 30, "every callback stored"
    )
    pipeline.app.send_task("tasks.reconcile_claims", queue="maintenance")

    def settled() -> bool:
        samples = _scrape(webhooks)
        ran = _value(
            samples, "interactions_maintenance_runs_total", task="reconcile_claims", result="ran"
        )
        return ran == 1 and _value(samples, "interactions_queue_depth", queue="status") == 0

    wait_until(settled, 30, "the reconcile run and an empty status queue", every=0.5)
    samples = _scrape(webhooks)
    table = _table(pipeline)
    table["inbox"] -= inbox_before
    email = {"channel": "email", "provider": "notify"}
    for counter in ("created", "sent", "delivered", "opened", "failed"):
        assert _value(samples, f"interactions_{counter}_total", **email) == table[counter], counter
    assert table == {
        "created": 12,
        "sent": 11,
        "delivered": 11,
        "opened": 11,
        "failed": 1,
        "inbox": 22,
    }

    callbacks = {"provider": "notify"}
    assert (
        _value(samples, "interactions_webhook_events_total", result="accepted", **callbacks) == 22
    )
    assert _value(samples, "interactions_webhook_events_total", result="repeat", **callbacks) == 22
    send = {"provider": "notify", "operation": "send"}
    assert _value(samples, "interactions_provider_request_seconds_count", **send) == BATCH
    assert pipeline.stub.stats()["total"] == BATCH - 1  # the rejected one is not a receipt
    assert _value(samples, "interactions_provider_errors_total", kind="permanent", **send) == 1
    for queue in ("dispatch", "status", "maintenance"):
        assert _value(samples, "interactions_queue_depth", queue=queue) == 0
    assert _value(samples, "interactions_broker_up") == 1
    # Nothing personal in any label or help text.
    text = webhooks.post("/metrics", b"", {"Authorization": f"Bearer {SCRAPE_TOKEN}"}, "GET")[1]
    assert b"example.org" not in text and b"metrics:C-" not in text


def test_metrics_need_their_own_token(pipeline: Pipeline) -> None:
    env = {
        **pipeline.env(),
        "INTERACTIONS_METRICS_TOKEN_SHA256": json.dumps([token_sha256(SCRAPE_TOKEN)]),
        "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": json.dumps([token_sha256(CALLBACK_TOKEN)]),
    }
    webhooks = WebhookServer(env, pipeline.log_dir)
    pipeline.servers.append(webhooks)
    for headers in (
        {},
        {"Authorization": f"Bearer {CALLBACK_TOKEN}"},
        {"Authorization": "Basic x"},
    ):
        assert webhooks.post("/metrics", b"", headers, method="GET")[0] == 401
    assert (
        webhooks.post("/metrics", b"", {"Authorization": f"Bearer {SCRAPE_TOKEN}"}, "GET")[0] == 200
    )
