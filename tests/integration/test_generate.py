"""The benchmark's data generator writes rows the schema, the service and the key ring accept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.generate import LoadReport, generate
from bench.rows import address
from config.settings import Settings
from models import CustomerInteraction
from models.enums import ChannelType
from models.session import build_engine, session_factory
from providers.registry import ProviderRegistry
from services.sending.batch_status import batch_status
from services.sending.communication import CommunicationService
from services.sending.validation import recipient_index
from tests.conftest import PG_URL
from tests.fakes import FakeProvider

ROWS = 2000
URL = sa.engine.make_url(PG_URL)
GENERATED_URL = URL.set(database=f"{URL.database}_generate").render_as_string(False)


@pytest.fixture(scope="module")
def generated(test_settings: Settings) -> Iterator[tuple[LoadReport, Engine]]:
    report = generate(GENERATED_URL, ROWS, customers=300, workers=1, echo=False)
    engine = build_engine(GENERATED_URL, test_settings)
    yield report, engine
    engine.dispose()
    admin = sa.create_engine(URL.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{URL.database}_generate"')
    admin.dispose()


def scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.scalar(sa.text(sql))


def test_every_interaction_and_event_is_written_with_its_constraints_rebuilt(
    generated: tuple[LoadReport, Engine],
) -> None:
    report, engine = generated
    assert scalar(engine, "SELECT count(*) FROM interactions") == ROWS == report.interactions
    assert scalar(engine, "SELECT count(*) FROM interaction_events") == report.events
    assert ROWS <= report.events <= 4 * ROWS
    constraints = scalar(
        engine,
        "SELECT count(*) FROM pg_constraint WHERE conrelid::regclass::text IN "
        "('interactions', 'interaction_events') AND contype IN ('u', 'f') AND convalidated",
    )
    assert constraints == 3  # the two unique keys of interactions, the events' foreign key
    unique_indexes = scalar(
        engine,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'interaction_events'::regclass "
        "AND indisunique AND indisvalid AND NOT indisprimary",
    )
    assert unique_indexes == 1  # the receipts' dedupe key
    assert scalar(engine, "SELECT count(*) FROM interactions WHERE id NOT IN "
                  "(SELECT interaction_id FROM interaction_events)") == 0  # fmt: skip


def test_every_channel_and_final_status_appears(generated: tuple[LoadReport, Engine]) -> None:
    _, engine = generated
    with engine.connect() as connection:
        channels = set(connection.scalars(sa.text("SELECT DISTINCT channel FROM interactions")))
        statuses = set(connection.scalars(sa.text("SELECT DISTINCT status FROM interactions")))
    assert channels == {"email", "sms", "phone", "system"}
    assert {"sent", "delivered", "opened", "failed"} <= statuses


def test_sealed_values_open_and_the_blind_index_finds_the_address(
    generated: tuple[LoadReport, Engine], test_settings: Settings
) -> None:
    _, engine = generated
    sessions = session_factory(engine)
    with sessions() as session:
        row = session.scalars(
            sa.select(CustomerInteraction).where(
                CustomerInteraction.channel == ChannelType.EMAIL,
                CustomerInteraction.body_content.is_not(None),
            )
        ).first()
        assert row is not None
        assert row.recipient is not None and row.recipient.endswith("@example.org")
        assert row.body_content is not None and row.body_content.startswith("Hello")
        assert row.meta_data is not None and "name" in row.meta_data["payload"]
        customer = int(row.customer_id.removeprefix("C-"))
        expected = recipient_index(ChannelType.EMAIL, address("email", customer))
        assert row.recipient_hash == expected


def test_the_service_reads_the_timeline_and_batch_status(
    generated: tuple[LoadReport, Engine], test_settings: Settings
) -> None:
    _, engine = generated
    sessions = session_factory(engine)
    service = CommunicationService(sessions, ProviderRegistry.single(FakeProvider()), test_settings)
    heaviest = str(
        scalar(
            engine,
            "SELECT customer_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        )
    )
    first = service.get_history(heaviest, 5)
    assert len(first.items) == 5 and first.next_cursor is not None
    second = service.get_history(heaviest, 5, cursor=first.next_cursor)
    assert second.items and second.items[0].created_at <= first.items[-1].created_at
    batch = str(scalar(engine, "SELECT id FROM batches ORDER BY total_rows DESC LIMIT 1"))
    status = batch_status(sessions, batch, datetime.now(UTC))
    assert sum(status.by_status.values()) == status.rows > 0
