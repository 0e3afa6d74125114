"""Reading the archive back: purging under legal holds, and a customer's archived timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from models.archive import ArchiveManifest, ArchiveState
from models.disclosure import StaffDisclosure
from providers.registry import ProviderRegistry
from services.archive.fileformat.months import parse_month
from services.archive.jobs import legal_holds
from services.archive.jobs.janitor import Janitor
from services.archive.jobs.retention_purge import purge_expired
from services.sending.communication import CommunicationService
from tests.archive_fixtures import (
    ArchiveWorld,
    moto_endpoint_fixture,  # noqa: F401 - a fixture
    seed,
    world_fixture,  # noqa: F401 - a fixture
)
from tests.fakes import FakeProvider

# 24 months hot + 7 years cold: months before 2024-06 are past the retention.
NOW = datetime(2033, 6, 10, 9, 0, tzinfo=UTC)


def states(world: ArchiveWorld) -> dict[str, ArchiveState]:
    with Session(world.engine) as session:
        rows = session.scalars(sa.select(ArchiveManifest))
        return {f"{r.month:%Y-%m}/{r.first_id}": r.state for r in rows}


def test_purge_keeps_what_a_legal_hold_covers_and_the_dry_run_says_why(
    world: ArchiveWorld,
) -> None:
    # Three months past the nine years (before 2024-06), one inside them.
    held = seed(world.engine, datetime(2024, 1, 20, tzinfo=UTC), customer_id="C-HELD")
    free = seed(world.engine, datetime(2024, 2, 20, tzinfo=UTC), customer_id="C-FREE")
    month_held = seed(world.engine, datetime(2024, 3, 20, tzinfo=UTC), customer_id="C-FREE")
    recent = seed(world.engine, datetime(2024, 6, 2, tzinfo=UTC), customer_id="C-FREE")
    Janitor(world.engine, world.store, world.settings).run(datetime(2025, 1, 1, tzinfo=UTC))
    sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
    hold = legal_holds.place(
        sessions, customer_id="C-HELD", month=None, placed_by="j.doe", reason="case 2031-17"
    )
    legal_holds.place(
        sessions, customer_id=None, month=parse_month("2024-03"), placed_by="a.roe", reason="audit"
    )

    dry = purge_expired(world.engine, world.store, world.settings, dry_run=True, clock=lambda: NOW)
    decisions = {d.key.split("/")[1]: d for d in dry.decisions}
    assert set(decisions) == {"2024-01", "2024-02", "2024-03"}
    assert not decisions["2024-01"].purge
    assert (
        decisions["2024-01"].reason
        == f"legal hold #{hold.id} on customer C-HELD by j.doe: case 2031-17"
    )
    assert (
        decisions["2024-02"].purge and "24 months hot + 7 years cold" in decisions["2024-02"].reason
    )
    assert "month 2024-03 by a.roe" in decisions["2024-03"].reason
    assert [(w.key.split("/")[1], w.eligible_on) for w in dry.waiting] == [
        ("2024-06", date(2033, 7, 1))
    ]
    assert dry.purged == 0 and all(s is ArchiveState.ARCHIVED for s in states(world).values())

    done = purge_expired(world.engine, world.store, world.settings, clock=lambda: NOW)
    assert done.purged == 1
    assert states(world) == {
        f"2024-01/{held}": ArchiveState.ARCHIVED,
        f"2024-02/{free}": ArchiveState.PURGED,
        f"2024-03/{month_held}": ArchiveState.ARCHIVED,
        f"2024-06/{recent}": ArchiveState.ARCHIVED,
    }
    assert not any("2024-02" in key for key in world.store.keys("interactions/"))

    legal_holds.release(sessions, hold.id, "j.doe")
    after = purge_expired(world.engine, world.store, world.settings, clock=lambda: NOW)
    assert after.purged == 1 and states(world)[f"2024-01/{held}"] is ArchiveState.PURGED


def test_history_reads_archived_interactions_back_with_the_hot_ones(world: ArchiveWorld) -> None:
    cutoff = datetime(2024, 3, 1, tzinfo=UTC)
    old = [seed(world.engine, cutoff - timedelta(days=d), customer_id="C-7") for d in (90, 30, 2)]
    other = seed(world.engine, cutoff - timedelta(days=3), customer_id="C-8")
    hot = [seed(world.engine, cutoff + timedelta(days=d), customer_id="C-7") for d in (1, 5)]
    Janitor(world.engine, world.store, world.settings).run(cutoff)
    sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
    service = CommunicationService(
        sessions, ProviderRegistry.single(FakeProvider()), world.settings
    )

    assert [r.id for r in service.get_history("C-7").items] == hot[::-1]
    first = service.get_history("C-7", 3, include_archived=True)
    assert [r.id for r in first.items] == [hot[1], hot[0], old[2]]
    assert first.next_cursor is not None
    rest = service.get_history("C-7", 3, cursor=first.next_cursor, include_archived=True)
    assert [r.id for r in rest.items] == [old[1], old[0]] and rest.next_cursor is None
    record = rest.items[0]
    assert record.customer_id == "C-7" and record.body_content and "\t" in record.body_content
    assert record.created_at == cutoff - timedelta(days=30)
    assert [r.id for r in service.get_history("C-8", include_archived=True).items] == [other]
    assert service.get_history("C-9", include_archived=True).items == []


@pytest.mark.parametrize("world", ["local"], indirect=True)
def test_staff_disclosures_go_with_the_hot_retention_unless_a_hold_keeps_them(
    world: ArchiveWorld,
) -> None:
    # 24 months hot: disclosures made before 2031-06-10 name only messages that have left.
    made = {
        "old": ("C-FREE", datetime(2031, 1, 5, tzinfo=UTC)),
        "old-held-customer": ("C-HELD", datetime(2030, 4, 1, tzinfo=UTC)),
        "old-held-month": ("C-FREE", datetime(2030, 9, 12, tzinfo=UTC)),
        "recent": ("C-FREE", datetime(2031, 7, 1, tzinfo=UTC)),
    }
    with world.engine.begin() as connection:
        for page, (customer, at) in made.items():
            connection.execute(
                sa.insert(StaffDisclosure).values(
                    actor="a.gent",
                    customer_id=customer,
                    page=page,
                    shown=[],
                    interactions=[],
                    at=at,
                )
            )
    sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
    legal_holds.place(sessions, customer_id="C-HELD", month=None, placed_by="j.doe", reason="case")
    legal_holds.place(
        sessions, customer_id=None, month=parse_month("2030-09"), placed_by="a.roe", reason="audit"
    )

    dry = purge_expired(world.engine, world.store, world.settings, dry_run=True, clock=lambda: NOW)
    assert dry.disclosures == 1
    done = purge_expired(world.engine, world.store, world.settings, clock=lambda: NOW)
    assert done.disclosures == 1
    with Session(world.engine) as session:
        left = set(session.scalars(sa.select(StaffDisclosure.page)))
    assert left == {"old-held-customer", "old-held-month", "recent"}
