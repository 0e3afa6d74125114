"""Stored callbacks applied per second by a real worker: drains against one task per callback.

    .venv/bin/python -m bench.drain                    # 5,000 callbacks, each way
    .venv/bin/python -m bench.drain --callbacks 20000 --workers 2

Seeds SENT interactions and one delivery receipt in the inbox for each, then starts Celery
workers (the service's own settings: threads pool) on the status queue and times, from the
first message to the last receipt settled: the drain (one wake, batches of
INTERACTIONS_INBOX_DRAIN_BATCH_SIZE), then the same receipts applied with one
``tasks.apply_status_event`` message each, as the webhook used to enqueue them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from bench.webhooks import receipt
from broker.app import create_app
from broker.wake import InboxWake
from config.settings import Settings
from devtools.database import recreate_database
from devtools.keys import use_test_keys
from devtools.processes import start_workers, stop_workers, wait_until
from models import CustomerInteraction, InboundEvent
from models.base import utcnow
from models.enums import ChannelType, InteractionStatus
from models.inbound import InboundState
from models.migrate import upgrade
from models.session import build_engine, session_factory
from services.callbacks import inbox
from services.callbacks.parsing import parse_notify

DB_URL = os.environ.get(
    "BENCH_DRAIN_DATABASE_URL",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/interactions_bench_drain",
)
BROKER_URL = os.environ.get("BENCH_DRAIN_BROKER_URL", "redis://127.0.0.1:6379/10")


class World:
    """The benchmark's database and broker, seeded afresh for each way of applying."""

    def __init__(self, callbacks: int) -> None:
        use_test_keys()
        self.callbacks = callbacks
        self.settings = Settings(environment="test", database_url=DB_URL, broker_url=BROKER_URL)
        recreate_database(DB_URL)
        self.engine = build_engine(DB_URL, self.settings)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.redis = redis.Redis.from_url(BROKER_URL)

    def seed(self) -> list[int]:
        """Fresh interactions and receipts; the inbox ids."""
        with self.engine.begin() as connection:
            connection.execute(sa.text("TRUNCATE inbound_events, interaction_events, interactions"))
        self.redis.flushdb()
        now = utcnow()
        rows = [
            {
                "interaction_uuid": uuid.uuid4(),
                "customer_id": f"C-{n}",
                "idempotency_key": f"bench-drain:{n}",
                "channel": ChannelType.EMAIL,
                "status": InteractionStatus.SENT,
                "provider": "notify",
                "provider_reference": f"N-{n}",
                "attempt_count": 1,
                "sent_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(self.callbacks)
        ]
        with self.sessions() as session, session.begin():
            session.execute(sa.insert(CustomerInteraction), rows)
        ids = []
        for row in rows:
            body = receipt(
                now.isoformat(), str(row["provider_reference"]), str(row["interaction_uuid"])
            )
            parsed = parse_notify(body)
            ids.append(inbox.store(self.sessions, "notify", parsed, body, now).inbound_id)
        return ids

    def settled(self) -> int:
        return self._count(InboundEvent.state == InboundState.APPLIED)

    def delivered(self) -> int:
        return self._count(CustomerInteraction.status == InteractionStatus.DELIVERED)

    def _count(self, condition: sa.ColumnElement[bool]) -> int:
        """Rows of the condition's table that meet it."""
        with self.engine.connect() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).where(condition)) or 0)


def timed(world: World, args: argparse.Namespace, log_dir: Path, publish: str) -> float:
    """Callbacks settled per second, from the first message to the last settled receipt."""
    ids = world.seed()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    env.update(INTERACTIONS_DATABASE_URL=DB_URL, INTERACTIONS_BROKER_URL=BROKER_URL)
    workers = start_workers("workers.app", env, args.workers, log_dir, publish, "status")
    try:
        celery = create_app(world.settings)
        started = time.perf_counter()
        if publish == "drain":
            InboxWake(celery).wake()
        else:
            with celery.producer_or_acquire() as producer:
                for inbound_id in ids:
                    celery.send_task(
                        "tasks.apply_status_event",
                        kwargs={"event_id": inbound_id},
                        queue="status",
                        producer=producer,
                    )
        finished = wait_until(
            lambda: world.settled() == len(ids), args.timeout, publish, every=0.05
        )
    except TimeoutError:
        for log in sorted(log_dir.glob(f"{publish}-*.log")):
            print(log.read_text(errors="replace")[-3000:])
        raise
    finally:
        stop_workers(workers)
    if world.delivered() != len(ids):
        raise SystemExit(f"{publish}: {world.delivered()} of {len(ids)} interactions DELIVERED")
    return len(ids) / (finished - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per way, at most")
    args = parser.parse_args()
    world = World(args.callbacks)
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        drained = timed(world, args, Path(tmp), "drain")
        alone = timed(world, args, Path(tmp), "alone")
    world.redis.flushdb()
    print(f"callbacks: {args.callbacks:,}, worker processes: {args.workers}")
    print(f"drain (batches):          {drained:,.0f} callbacks applied/s")
    print(f"one task per callback:    {alone:,.0f} callbacks applied/s")
    print(f"drain / one task each:    {drained / alone:.2f}")


if __name__ == "__main__":
    main()
