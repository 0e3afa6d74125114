"""Logs of a real batch, errors included: JSON lines with ids, and never a recipient or a body."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import BIN, WebhookServer, Worker, wait_until
from services.callbacks.signatures import token_sha256
from services.sending.batches import BatchProducer, RecipientRow
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
CANARY_ADDRESS = "canary.5f1e9a@example.net"
REJECTED_ADDRESS = "canary.rejected.77c3@example.net"
CANARY_BODY = "CANARY-BODY-2b8d41"
CALLBACK_TOKEN = "logs-callback-token-6a5b4c3d"
IDS = ("interaction_uuid", "idempotency_key", "batch_id")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    # Celery prints its start-up banner to stdout, outside logging; every log record is JSON.
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_batch_with_errors_logs_ids_and_no_canary(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {
        **pipeline.env(),
        "INTERACTIONS_LOG_FORMAT": "json",
        "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": json.dumps([token_sha256(CALLBACK_TOKEN)]),
    }
    webhooks = WebhookServer(env, pipeline.log_dir)
    pipeline.servers.append(webhooks)
    pipeline.stub.configure(
        callback_url=f"{webhooks.url}/callbacks/notify",
        callback_token=CALLBACK_TOKEN,
        callback_statuses=["delivered"],
        fail_next=4,
        failure_status=429,
        reject_recipients_containing="canary.rejected",
    )
    worker = Worker(env, "w1", pipeline.log_dir, concurrency=4)
    pipeline.workers.append(worker)
    worker.wait_ready()

    rows = [
        RecipientRow(1, "C-1", CANARY_ADDRESS, {"name": CANARY_BODY}),
        RecipientRow(2, "C-2", REJECTED_ADDRESS, {"name": CANARY_BODY}),
        RecipientRow(3, "C-3", "bad address", {"name": CANARY_BODY}),
        *(
            RecipientRow(i, f"C-{i}", f"p{i}@example.org", {"name": CANARY_BODY})
            for i in range(4, 9)
        ),
    ]
    report = BatchProducer(pipeline.sessions, pipeline.publisher, pipeline.settings).run(
        "logs", "email", "welcome", iter(rows)
    )
    assert report.rejected == 1  # the bad address, refused by the producer
    wait_until(
        lambda: pipeline.statuses("logs") == {"delivered": 6, "failed": 1}, 60, "6 DELIVERED"
    )
    # A forged callback, and one CLI dispatch at DEBUG with the canary as its recipient.
    webhooks.post("/callbacks/notify", b"{}", {"Authorization": "Bearer forged"})
    cli_env = {**env, "INTERACTIONS_EMAIL_PROVIDER": "log"}
    subprocess.run(
        [
            *(str(BIN / "interactions"), "-v", "dispatch", "--customer", "C-99"),
            *("--channel", "email", "--template", "welcome", "--key", "logs:cli"),
            *("--recipient", CANARY_ADDRESS, "--payload", json.dumps({"name": CANARY_BODY})),
        ],
        env=cli_env,
        stdout=(pipeline.log_dir / "cli.log").open("w"),
        stderr=subprocess.STDOUT,
        timeout=60,
        check=True,
    )
    worker.stop()
    webhooks.stop()

    logs = {path.name: path.read_text() for path in pipeline.log_dir.glob("*.log")}
    assert set(logs) == {"w1.log", "webhooks.log", "cli.log"}
    for name, text in [*logs.items(), ("producer (caplog)", caplog.text)]:
        for canary in (CANARY_ADDRESS, REJECTED_ADDRESS, "canary.", CANARY_BODY, "p4@example"):
            assert canary not in text, f"{canary!r} is in the {name} log"

    worker_lines = _json_lines(pipeline.log_dir / "w1.log")
    assert len(worker_lines) > 20
    retried = [line for line in worker_lines if "will be retried" in line["message"]]
    assert retried, "the 429s were retried and logged"
    dispatch_lines = [line for line in worker_lines if line.get("task_name") == "tasks.dispatch"]
    done = [line for line in dispatch_lines if "succeeded" in line["message"]]
    assert len(done) >= 7
    for line in retried + done:
        assert all(line.get(name) for name in IDS), line
        assert line["batch_id"] == "logs" and line["idempotency_key"].startswith("logs:C-")
    webhook_lines = _json_lines(pipeline.log_dir / "webhooks.log")
    assert any("callback refused" in line["message"] for line in webhook_lines)
    assert all(line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR") for line in webhook_lines)
    assert _json_lines(pipeline.log_dir / "cli.log"), "the CLI logs JSON at DEBUG too"
