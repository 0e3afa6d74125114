"""Reads at scale: the timeline, the webhook's lookup and batch-status on 1M and 10M rows.

    .venv/bin/python -m bench.timeline                     # 1M and 10M, generated first
    .venv/bin/python -m bench.timeline --sizes 10m --reuse # the 10M database kept from before

Every figure times the service's own call (CommunicationService.get_history, the status
apply's find_by_reference, batch_status), each call twice: the figures are of the second
pass, on a warm cache, and the first pass's p99 is given beside them. The SQL each call sent
is captured and run again under EXPLAIN (ANALYZE, BUFFERS), saved under var/bench/plans/,
and a plan that reads interactions or interaction_events from end to end is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import growth, plans
from bench.generate import DEFAULT_URL, generate
from bench.rows import address, customer_id
from config.settings import Settings
from models.crypto import Undecryptable
from models.enums import InteractionStatus
from models.interaction import CustomerInteraction
from models.migrate import upgrade
from models.session import build_engine, session_factory
from providers.log import LogProvider
from providers.registry import ProviderRegistry
from services.callbacks import status_events
from services.sending.batch_status import batch_status
from services.sending.batches import BatchProducer
from services.sending.communication import CommunicationService
from services.sending.polling import Poller

SIZES = {"1m": 1_000_000, "10m": 10_000_000, "100k": 100_000}
OUT = Path("var/bench")
GOAL_P99_MS = 5.0
PAGE = 50
DEEP_FROM, DEEP_TO = 20, 40  # pages of a heavy customer's timeline timed as "deep"


@dataclass(frozen=True)
class Figure:
    """The latencies of one query form, and what its plans said."""

    name: str
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    seq_scan: bool
    plan_file: str
    first_pass_p99_ms: float  # the same calls on the cache as the run found it
    goal: bool = True  # held to the 5 ms goal

    @property
    def met(self) -> bool:
        return self.p99_ms < GOAL_P99_MS and not self.seq_scan


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Workload:
    """The service over one database, and the samples every form draws on."""

    def __init__(self, url: str, size: str, samples: int, seed: int = 7) -> None:
        self.size = size
        self.samples = samples
        self.rng = random.Random(seed)
        self.settings = Settings(environment="test", database_url=url, database_pool_size=2)
        self.engine = build_engine(url, self.settings)
        self.sessions = session_factory(self.engine)
        self.providers = ProviderRegistry.single(LogProvider())
        self.service = CommunicationService(self.sessions, self.providers, self.settings)
        with self.engine.connect() as connection:
            self.rows = int(connection.scalar(sa.text("SELECT max(id) FROM interactions")) or 0)
            top = connection.scalar(sa.text("SELECT max(customer_id) FROM interactions"))
            self.customers = int(str(top).removeprefix("C-")) + 1
            self.heavy = [
                row[0]
                for row in connection.execute(
                    sa.text(
                        "SELECT customer_id FROM interactions GROUP BY customer_id "
                        "ORDER BY count(*) DESC LIMIT 20"
                    )
                )
            ]
            ids = [self.rng.randint(1, self.rows) for _ in range(samples * 3)]
            picked = connection.execute(
                sa.text(
                    "SELECT provider_reference, interaction_uuid, batch_id, customer_id, channel, "
                    "idempotency_key "
                    "FROM interactions WHERE id = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        self.references = [r[0] for r in picked if r[0]][:samples]
        self.uuids = [str(r[1]) for r in picked][:samples]
        self.batches = sorted({r[2] for r in picked if r[2]})
        self.keys = [r[5] for r in picked]
        self.addresses = [(r[4], address(r[4], int(r[3][2:]))) for r in picked if r[4] != "phone"]

    def close(self) -> None:
        self.engine.dispose()

    def measure(
        self, name: str, calls: list[Callable[[], Any]], goal: bool = True
    ) -> Figure | None:
        """Time every call twice (the figure is the second pass), then EXPLAIN the first few.

        None when the database has nothing to call it on (no page that deep in a small one).

        The first pass reads from disk what the cache does not hold; the second measures the
        queries on a warm cache, as a primary with enough memory for its hot set serves them.
        """
        if not calls:
            print(f"{self.size}: {name}: nothing to measure in a database this size")
            return None
        first = [self.time(call) for call in calls]
        latencies = [self.time(call) for call in calls]
        with plans.capture(self.engine) as captured:
            for call in calls[:3]:
                call()
        explained = plans.explain(self.engine, captured.statements)
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        path = OUT / "plans" / self.size / f"{slug}.txt"
        plans.save(explained, path)
        return Figure(
            name,
            len(latencies),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            max(latencies),
            any(plan.seq_scan for plan in explained),
            str(path),
            percentile(first, 0.99),
            goal,
        )

    @staticmethod
    def time(call: Callable[[], Any]) -> float:
        """Milliseconds one call took."""
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    def figures(self) -> list[Figure]:
        """Every query form that this database has something to call it on."""
        return [figure for figure in self._measured() if figure is not None]

    def _measured(self) -> list[Figure | None]:
        service, rng = self.service, self.rng
        randoms = [customer_id(rng.randrange(self.customers)) for _ in range(self.samples)]
        heavy_first = [self.heavy[n % len(self.heavy)] for n in range(max(200, self.samples // 2))]
        deep = self.deep_cursors()
        now = datetime.now(UTC)

        def lookup(reference: str | None, own: str | None) -> Callable[[], Any]:
            def call() -> Any:
                with self.sessions() as session:
                    found = status_events.find_by_reference(session, reference or "", own)
                    session.rollback()  # let go of the row lock the apply would hold
                    return found

            return call

        poller = Poller(self.sessions, self.providers, self.settings, lambda: now)
        producer = BatchProducer(self.sessions, None, self.settings)  # type: ignore[arg-type]
        chunks = [self.keys[n : n + 1000] for n in range(0, len(self.keys), 1000)]

        def seen(reference: str) -> Callable[[], Any]:
            event = status_events.StatusEvent(
                reference, InteractionStatus.DELIVERED, "notify", f"{reference}:delivered"
            )

            def call() -> Any:
                with self.sessions() as session:
                    return status_events._seen(session, event)

            return call

        ids = [rng.randint(1, self.rows) for _ in range(self.samples)]

        def by_id(ident: int) -> Callable[[], Any]:
            def call() -> Any:
                with self.sessions() as session:
                    return session.get(CustomerInteraction, ident)

            return call

        return [
            self.measure(
                "baseline: one interaction by primary key",
                [by_id(i) for i in ids],
                goal=False,
            ),
            self.measure(
                "timeline first page: random customers",
                [lambda c=c: service.get_history(c, PAGE) for c in randoms],
            ),
            self.measure(
                "timeline first page: 20 heaviest",
                [lambda c=c: service.get_history(c, PAGE) for c in heavy_first],
            ),
            self.measure(
                f"timeline deep page: 20 heaviest, pages {DEEP_FROM}-{DEEP_TO}",
                [lambda c=c, k=k: service.get_history(c, PAGE, cursor=k) for c, k in deep],
            ),
            self.measure(
                "lookup by provider reference: the status apply",
                [lookup(r, None) for r in self.references],
            ),
            self.measure(
                "lookup by own reference: a receipt before SENT",
                [lookup("not-known-yet", u) for u in self.uuids],
            ),
            self.measure(
                "duplicate receipt check: (provider, event id)",
                [seen(r) for r in self.references],
            ),
            self.measure(
                "batch-status: random batches",
                [lambda b=b: batch_status(self.sessions, b, now) for b in self.batches],
            ),
            self.measure(
                "sent-to: by blind index",
                [
                    lambda c=c, a=a: service.find_by_recipient(c, a, 50)
                    for c, a in self.addresses[: self.samples]
                ],
                goal=False,
            ),
            self.measure(
                "poll_unfinished: SENT with no outcome",
                [lambda: poller._unfinished(now)] * 20,  # the query alone
                goal=False,
            ),
            self.measure(
                "producer already-sent check: 1,000 keys",
                [lambda k=k: producer._already_sent(k) for k in chunks],
                goal=False,
            ),
        ]

    def deep_cursors(self) -> list[tuple[str, str]]:
        """(customer, cursor) for pages DEEP_FROM to DEEP_TO of each heavy customer."""
        out = []
        for customer in self.heavy:
            cursor = None
            for page in range(1, DEEP_TO + 1):
                result = self.service.get_history(customer, PAGE, cursor=cursor)
                cursor = result.next_cursor
                if cursor is None:
                    break
                if page + 1 >= DEEP_FROM:
                    out.append((customer, cursor))
        return out


def database_url(size: str) -> str:
    return (
        sa.engine.make_url(DEFAULT_URL).set(database=f"bench_scale_{size}").render_as_string(False)
    )


def _sealed_elsewhere(engine: sa.engine.Engine, size: str) -> bool:
    """Whether the kept rows were sealed under another key ring than this process's."""
    try:
        with engine.connect() as connection:
            connection.scalar(
                sa.select(CustomerInteraction.recipient)
                .where(CustomerInteraction.recipient.is_not(None))
                .limit(1)
            )
    except Undecryptable:
        print(f"{size}: its sealed values are under another key ring; generating it again")
        return True
    return False


def prepare(size: str, reuse: bool) -> str:
    """The database for ``size``, generated unless it is there and ``reuse`` says keep it."""
    url = database_url(size)
    if reuse:
        try:
            engine = build_engine(url, Settings(environment="test", database_url=url))
            with engine.connect() as connection:
                rows = connection.scalar(sa.text("SELECT max(id) FROM interactions"))
            if rows == SIZES[size] and not _sealed_elsewhere(engine, size):
                started = time.perf_counter()
                upgrade(engine)  # a newer revision's indexes, built on the rows already there
                print(f"{size}: reused, migrated to head in {time.perf_counter() - started:.1f} s")
                engine.dispose()
                return url
            engine.dispose()
        except sa.exc.OperationalError:
            pass
    generate(url, SIZES[size])
    return url


def run(sizes: list[str], samples: int, reuse: bool) -> dict[str, Any]:
    """Every figure of every size, and the growth of the tables."""
    results: dict[str, Any] = {}
    for size in sizes:
        url = prepare(size, reuse)
        workload = Workload(url, size, samples)
        growth.reset_usage(url)  # after the samples were drawn: only the service's queries count
        try:
            figures = workload.figures()
        finally:
            workload.close()
        results[size] = {
            "figures": [asdict(f) | {"met": f.met} for f in figures],
            "growth": growth.measure(url),
        }
        report(size, figures)
        growth.report(results[size]["growth"])
    return results


def report(size: str, figures: list[Figure]) -> None:
    print(f"\n{size} interactions ({datetime.now(UTC):%H:%M} UTC)")
    print(
        f"{'query':<56}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'1st p99':>9}"
        "  seq scan  goal"
    )
    for f in figures:
        verdict = ("met" if f.met else "MISSED") if f.goal else "-"
        print(
            f"{f.name:<56}{f.samples:>6}{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}{f.max_ms:>9.2f}"
            f"{f.first_pass_p99_ms:>9.2f}  {'YES' if f.seq_scan else 'no':<8}  {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1m,10m", help=f"of {', '.join(SIZES)}")
    parser.add_argument("--samples", type=int, default=1000, help="calls per query form")
    parser.add_argument("--reuse", action="store_true", help="keep a database already filled")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = run(args.sizes.split(","), args.samples, args.reuse)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
