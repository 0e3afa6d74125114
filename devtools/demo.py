"""The demonstration: a 1,000-recipient batch through a real worker that is killed part-way."""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
from pathlib import Path

import click
import sqlalchemy as sa
from pydantic import SecretStr
from werkzeug.serving import make_server

from config.settings import Settings, get_settings
from devtools.processes import Worker, poll
from devtools.stub.server import StubNotifyServer
from models import CustomerInteraction, InboundEvent, InteractionEvent
from models.base import utcnow
from models.migrate import upgrade
from services.callbacks.signatures import token_sha256
from services.container import Container, container
from services.sending.batches import read_csv
from services.sending.communication import CommunicationService
from workers import display
from workers.webhooks import create_app as create_webhook_app

RECIPIENTS = 1000
KILL_AFTER = 400
DEMO_API_KEY = "demo-1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b-0f8fad5b-d9cb-469f-a165-70867728950e"
DEMO_TEMPLATE_ID = "9c7b2f1e-3d4a-4b5c-8d6e-7f8091a2b3c4"
DEMO_CALLBACK_TOKEN = "demo-callback-token-7c1e9a3b5d"  # noqa: S105 - the demo's own stub


def _demo_settings(base: Settings, stub_url: str) -> Settings:
    return base.model_copy(
        update={
            "email_provider": "notify",
            "notify_base_url": stub_url,
            "notify_api_key": SecretStr(DEMO_API_KEY),
            "notify_templates": {"welcome": DEMO_TEMPLATE_ID},
            "claim_lease_seconds": 15,
            "task_time_limit_seconds": 10,
            "provider_timeout_seconds": 3.0,
            "provider_connect_timeout_seconds": 1.0,
            "released_claim_grace_seconds": 20,
            "webhook_notify_token_sha256": [token_sha256(DEMO_CALLBACK_TOKEN)],
        }
    )


def _environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    env.update(
        INTERACTIONS_VAR_DIR=str(settings.var_dir.resolve()),
        INTERACTIONS_EMAIL_PROVIDER="notify",
        INTERACTIONS_NOTIFY_BASE_URL=settings.notify_base_url,
        INTERACTIONS_NOTIFY_API_KEY=DEMO_API_KEY,
        INTERACTIONS_NOTIFY_TEMPLATES=f'{{"welcome": "{DEMO_TEMPLATE_ID}"}}',
        INTERACTIONS_CLAIM_LEASE_SECONDS=str(settings.claim_lease_seconds),
        INTERACTIONS_TASK_TIME_LIMIT_SECONDS=str(settings.task_time_limit_seconds),
        INTERACTIONS_PROVIDER_TIMEOUT_SECONDS=str(settings.provider_timeout_seconds),
        INTERACTIONS_PROVIDER_CONNECT_TIMEOUT_SECONDS=str(
            settings.provider_connect_timeout_seconds
        ),
        INTERACTIONS_WORKER_CONCURRENCY="8",
    )
    if settings.encryption_keys:
        keys = {k: v.get_secret_value() for k, v in settings.encryption_keys.items()}
        env["INTERACTIONS_ENCRYPTION_KEYS"] = json.dumps(keys)
        env["INTERACTIONS_ENCRYPTION_ACTIVE_KEY"] = settings.encryption_active_key or ""
    if settings.blind_index_key:
        env["INTERACTIONS_BLIND_INDEX_KEY"] = settings.blind_index_key.get_secret_value()
    if settings.database_url:
        env["INTERACTIONS_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["INTERACTIONS_BROKER_URL"] = settings.broker_url
    return env


def _write_recipients(path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["customer_id", "recipient", "name"])
        for i in range(1, RECIPIENTS + 1):
            writer.writerow([f"C-{i:04d}", f"resident{i}@example.org", f"Resident {i}"])


class DemoRun:
    """One run of the demonstration against a live stub provider."""

    def __init__(self, base: Settings, stub: StubNotifyServer, run_dir: Path) -> None:
        self.stub = stub
        self.run_dir = run_dir
        self.settings = _demo_settings(base, stub.url)
        self.env = _environment(self.settings)
        self.started = utcnow()
        self.batch_id = f"demo-{self.started:%Y%m%d-%H%M%S}"
        self.csv_path = run_dir / f"{self.batch_id}.csv"
        parts = Container(self.settings)
        self.sessions = parts.sessions
        self.producer = parts.batch_producer
        self.providers = parts.providers
        self.confirmed = self.requeued = 0
        self.reconciler = parts.reconciler()

    def produce(self) -> str:
        """Run the producer over the CSV; running it again is the resume."""
        with self.csv_path.open("rb") as stream:
            report = self.producer.run(
                self.batch_id, "email", "welcome", read_csv(stream), source=self.csv_path.name
            )
        return f"{report.enqueued} enqueued, {report.already_sent} already sent"

    def receipts(self) -> int:
        """Messages the provider has accepted."""
        return int(self.stub.stats()["total"])

    def statuses(self) -> dict[str, int]:
        """The batch's interactions by status."""
        table = CustomerInteraction
        with self.sessions() as session:
            rows = session.execute(
                sa.select(table.status, sa.func.count())
                .where(table.batch_id == self.batch_id)
                .group_by(table.status)
            ).all()
        return {s.value: n for s, n in rows}

    def inbound_since(self) -> dict[str, int]:
        """Callbacks stored by this run's webhook app, by state."""
        with self.sessions() as session:
            rows = session.execute(
                sa.select(InboundEvent.state, sa.func.count())
                .where(InboundEvent.received_at >= self.started)
                .group_by(InboundEvent.state)
            ).all()
        return {s.value: n for s, n in rows}

    def events_of(self, interaction_id: int) -> list[InteractionEvent]:
        """The event history of one interaction, oldest first."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    sa.select(InteractionEvent)
                    .where(InteractionEvent.interaction_id == interaction_id)
                    .order_by(InteractionEvent.id)
                )
            )

    def callbacks_settled(self) -> bool:
        """Every callback the stub will post was posted, and none waits to be applied."""
        posted = self.stub.stats().get("callbacks", {})
        done = posted.get("sent", 0) + posted.get("failed", 0) >= 4 * RECIPIENTS
        return done and self.inbound_since().get("received", 0) == 0

    def all_sent(self) -> bool:
        """Whether every recipient reached the provider; if not, reconcile as beat would."""
        statuses = self.statuses()
        if sum(statuses.get(s, 0) for s in ("sent", "delivered", "opened")) == RECIPIENTS:
            return True
        report = self.reconciler.run()
        self.confirmed += report.confirmed_sent
        self.requeued += report.requeued
        return False

    def crash_and_resume(self) -> bool:
        """Worker 1 is killed part-way; worker 2, the producer again and reconciliation finish."""
        _write_recipients(self.csv_path)
        first = self._start_worker("demo-1")
        click.echo(f"batch {self.batch_id}: {RECIPIENTS} recipients; worker 1 is pid {first.pid}")
        click.echo(f"producer: {self.produce()}")
        poll(lambda: self.receipts() >= KILL_AFTER, 120)
        first.kill()
        click.echo(f"SIGKILL worker 1 after {self.receipts()} provider receipts")
        second = self._start_worker("demo-2")
        click.echo(f"worker 2 is pid {second.pid}; producer again: {self.produce()}")
        try:
            settled = poll(self.all_sent, 180, every=2.0)
            # Receipts keep arriving through the webhook app; let every one land and apply.
            poll(self.callbacks_settled, 90, every=1.0)
            return settled
        finally:
            second.stop()

    def _start_worker(self, name: str) -> Worker:
        """A worker of the demo's settings, logging into the run's directory."""
        return Worker(self.env, name, self.run_dir, concurrency=None, cwd=None)

    def report(self, settled: bool) -> None:
        """Print the counts and one customer's timeline."""
        stats = self.stub.stats()
        click.echo("")
        click.echo(f"recipients:             {RECIPIENTS}")
        click.echo(f"interactions by status: {dict(sorted(self.statuses().items()))}")
        unique = stats["unique_references"]
        click.echo(f"provider receipts:      {stats['total']} for {unique} interactions")
        click.echo(f"duplicates:             {stats['duplicates']}")
        callbacks = stats.get("callbacks", {})
        inbound = self.inbound_since()
        click.echo(
            f"callbacks:              {callbacks.get('sent', 0)} posted to the webhook app "
            f"(delivered and opened, each twice, shuffled): {sum(inbound.values())} stored, "
            f"{inbound.get('applied', 0)} applied once each; repeats acknowledged, not applied"
        )
        click.echo(
            f"reconciliation:         {self.confirmed} claims of the killed worker found at the"
            f" provider (recorded SENT, not re-sent), {self.requeued} not found and re-enqueued"
        )
        service = CommunicationService(self.sessions, self.providers, self.settings)
        service.add_note("C-0042", "Called to confirm the letter arrived.", author="agent.smith")
        click.echo("\ntimeline of C-0042:")
        timeline = service.get_history("C-0042", 10).items
        click.echo(display.timeline(timeline))
        sent = next(r for r in timeline if r.batch_id == self.batch_id)
        click.echo(f"\nhistory of {sent.idempotency_key}:")
        click.echo(display.events(self.events_of(sent.id)))
        if not settled or stats["duplicates"]:
            raise click.ClickException(
                f"the demo did not settle; worker logs are in {self.run_dir}"
            )


def run_demo() -> None:
    """Send a batch, SIGKILL the worker part-way, resume, reconcile, and show the result."""
    base = get_settings()
    where = (
        "embedded SQLite and the filesystem broker under ./var"
        if base.embedded
        else "the configured PostgreSQL and broker"
    )
    click.echo(f"running on {where}")
    upgrade(container().engine)
    run_dir = (base.var_dir / "demo").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    with StubNotifyServer(api_key=DEMO_API_KEY, latency_ms=5) as stub:
        demo = DemoRun(base, stub, run_dir)
        with WebhookThread(demo.settings) as webhooks:
            stub.configure(
                callback_url=f"{webhooks.url}/callbacks/notify",
                callback_token=DEMO_CALLBACK_TOKEN,
                callback_statuses=["delivered", "opened"],
                callback_duplicates=1,
                callback_shuffle=True,
            )
            settled = demo.crash_and_resume()
            demo.report(settled)


class WebhookThread:
    """The webhook app served from a thread of the demo, as gunicorn serves it in production."""

    def __init__(self, settings: Settings) -> None:
        app = create_webhook_app(settings)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookThread:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
