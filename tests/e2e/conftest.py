"""End-to-end fixtures: a committed PostgreSQL database, a Redis broker, the stub provider and
real worker processes."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import sessionmaker

from broker.app import create_app
from broker.publisher import CeleryPublisher
from config.settings import Settings
from devtools.database import empty_tables, recreate_database
from devtools.processes import WebhookServer, Worker
from devtools.stub.server import StubNotifyServer
from models import CustomerInteraction
from models.base import utcnow
from models.migrate import upgrade
from models.session import build_engine
from providers.registry import ProviderRegistry
from services.sending.batches import BatchProducer, BatchReport, DispatchMessage, RecipientRow
from services.sending.reconciliation import Reconciler, ReconcileReport
from tests.browser_fixtures import artifacts, browser  # noqa: F401 - fixtures
from tests.conftest import PG_URL, TABLES

pytestmark = pytest.mark.e2e

_TEST_URL = sa.engine.make_url(PG_URL)
E2E_DB = _TEST_URL.set(database=f"{_TEST_URL.database}_e2e").render_as_string(False)
BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
API_KEY = "e2e-0a4f5e2c-6b1d-4d8e-9a57-3c2b1f0e9d84-7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"
TEMPLATE_ID = "5a6b7c8d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"


def _reveal(value: object) -> object:
    """Settings as the environment spells them: secrets in clear, for the child processes."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


@pytest.fixture(scope="session")
def e2e_engine() -> Iterator[sa.engine.Engine]:
    recreate_database(E2E_DB)
    engine = build_engine(E2E_DB, Settings(environment="test", database_url=E2E_DB))
    upgrade(engine)
    yield engine
    engine.dispose()


@dataclass
class Pipeline:
    """The whole pipeline on real services, driven the way an operator drives it."""

    settings: Settings
    stub: StubNotifyServer
    engine: sa.engine.Engine
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)
    servers: list[WebhookServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = create_app(self.settings)
        self.publisher = CeleryPublisher(self.app)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        values = self.settings.model_dump(exclude={"var_dir", "templates_dir"})
        for name, value in values.items():
            if value is None:
                continue
            shown = _reveal(value)
            text = json.dumps(shown) if isinstance(shown, dict | list) else str(shown)
            base[f"INTERACTIONS_{name.upper()}"] = text
        base["INTERACTIONS_VAR_DIR"] = str(self.log_dir / "var")
        return base

    def start_webhooks(self, token_hash: str) -> WebhookServer:
        env = {**self.env(), "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": json.dumps([token_hash])}
        server = WebhookServer(env, self.log_dir)
        self.servers.append(server)
        return server

    def start_worker(self, concurrency: int = 16) -> Worker:
        worker = Worker(self.env(), f"w{len(self.workers) + 1}", self.log_dir, concurrency)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def send_batch(self, batch_id: str, count: int, start: int = 0) -> BatchReport:
        rows = (
            RecipientRow(i + 1, f"C-{i}", f"person{i}@example.org", {"name": f"Person {i}"})
            for i in range(start, start + count)
        )
        producer = BatchProducer(self.sessions, self.publisher, self.settings)
        return producer.run(batch_id, "email", "welcome", rows)

    def enqueue(self, message: DispatchMessage, times: int) -> None:
        self.publisher.publish([message] * times)

    def reconcile(self) -> ReconcileReport:
        return Reconciler(
            self.sessions,
            ProviderRegistry.from_settings(self.settings),
            self.publisher,
            self.settings,
            utcnow,
        ).run()

    def statuses(self, batch_id: str | None = None) -> Counter[str]:
        table = CustomerInteraction
        query = sa.select(table.status, sa.func.count()).group_by(table.status)
        if batch_id:
            query = query.where(table.batch_id == batch_id)
        with self.sessions() as session:
            return Counter({s.value: n for s, n in session.execute(query).all()})

    def receipts(self) -> dict[str, int]:
        return dict(self.stub.stats()["receipts"])


@contextmanager
def running_pipeline(engine: sa.engine.Engine, folder: Path, name: str) -> Iterator[Pipeline]:
    """Empty tables and broker, the stub provider started; logs kept under ``name``."""
    empty_tables(engine, *TABLES)
    broker = redis.Redis.from_url(BROKER)
    broker.flushdb()
    stub = StubNotifyServer(api_key=API_KEY).start()
    settings = Settings(
        environment="test",
        database_url=E2E_DB,
        broker_url=BROKER,
        var_dir=folder / "var",
        email_provider="notify",
        sms_provider="notify",
        notify_base_url=stub.url,
        notify_api_key=API_KEY,  # type: ignore[arg-type]
        notify_templates={"welcome": TEMPLATE_ID},
        claim_lease_seconds=10,
        task_time_limit_seconds=8,
        provider_timeout_seconds=3,
        provider_connect_timeout_seconds=1,
        retry_backoff_base_seconds=0.2,
        retry_backoff_max_seconds=2,
        released_claim_grace_seconds=30,
        database_pool_size=8,
    )
    log_dir = folder / "logs"
    log_dir.mkdir()
    pipe = Pipeline(settings, stub, engine, log_dir)
    yield pipe
    for worker in pipe.workers:
        worker.stop()
    for server in pipe.servers:
        server.stop()
    stub.stop()
    broker.flushdb()
    kept = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / name
    kept.mkdir(parents=True, exist_ok=True)
    for log in log_dir.glob("*.log"):
        (kept / log.name).write_text(log.read_text())


@pytest.fixture
def pipeline(
    e2e_engine: sa.engine.Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    with running_pipeline(e2e_engine, tmp_path, request.node.name) as pipe:
        yield pipe
