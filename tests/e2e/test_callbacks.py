"""Callbacks end to end: the stub posts receipts to gunicorn, workers apply them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from devtools.processes import wait_until
from models import InboundEvent
from services.callbacks.signatures import token_sha256
from tests.e2e.conftest import Pipeline
from tests.webhook_fixtures import notify_receipt

pytestmark = pytest.mark.e2e
TOKEN = "e2e-callback-token-5f4e3d2c1b0a"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def test_delivered_and_opened_arrive_duplicated_and_shuffled_and_end_opened(
    pipeline: Pipeline,
) -> None:
    webhooks = pipeline.start_webhooks(token_sha256(TOKEN))
    pipeline.stub.configure(
        callback_url=f"{webhooks.url}/callbacks/notify",
        callback_token=TOKEN,
        callback_statuses=["delivered", "opened"],
        callback_duplicates=1,
        callback_shuffle=True,
    )
    pipeline.start_worker()
    pipeline.send_batch("callbacks", 40)
    wait_until(lambda: pipeline.statuses("callbacks") == {"opened": 40}, 60, "40 OPENED")

    def inbox() -> dict[str, int]:
        with pipeline.sessions() as session:
            rows = session.execute(
                sa.select(InboundEvent.state, sa.func.count()).group_by(InboundEvent.state)
            ).all()
        return {state.value: n for state, n in rows}

    # Two statuses per interaction, each posted twice: stored once each, all applied (a late
    # "delivered" after "opened" is applied as a stale event, changing nothing).
    wait_until(lambda: inbox() == {"applied": 80}, 60, "80 inbox rows applied")
    assert pipeline.statuses("callbacks") == {"opened": 40}


def _pg(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, "-m", "fast"]
        if action == "stop"
        else ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        timeout=60,
    )


def test_a_callback_during_a_database_outage_gets_503_and_its_retry_applies_once(
    pipeline: Pipeline,
) -> None:
    webhooks = pipeline.start_webhooks(token_sha256(TOKEN))
    pipeline.start_worker()
    pipeline.send_batch("outage", 1)
    wait_until(lambda: pipeline.statuses("outage") == {"sent": 1}, 30, "1 SENT")
    stored = pipeline.stub.notifications()[0]
    body = notify_receipt(stored["id"], stored["reference"])
    _pg("stop")
    try:
        status, _ = webhooks.post("/callbacks/notify", body, AUTH)
        assert status == 503
    finally:
        _pg("start")
    pipeline.engine.dispose()

    def accepted() -> bool:
        return webhooks.post("/callbacks/notify", body, AUTH)[0] in (200, 202)

    wait_until(accepted, 30, "the provider's retry to be accepted", every=0.5)
    wait_until(lambda: pipeline.statuses("outage") == {"delivered": 1}, 30, "DELIVERED")
    assert webhooks.post("/callbacks/notify", body, AUTH)[0] == 200
    with pipeline.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(InboundEvent)) == 1
