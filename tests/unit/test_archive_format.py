"""The archive's pure parts: names, months, manifests, the customer filter and the schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from celery.schedules import crontab

from config.celery import celery_config
from config.settings import Settings
from services.archive.fileformat.customer_filter import HASHES, CustomerFilter, _positions
from services.archive.fileformat.manifest import Manifest
from services.archive.fileformat.months import months_back, parse_month
from services.archive.fileformat.names import manifest_key, object_key
from services.archive.jobs.retention_purge import eligible_on, purge_before
from services.archive.jobs.run_plan import MonthCount, Plan


def test_names_are_deterministic_and_sort_by_id() -> None:
    key = object_key(date(2024, 3, 1), 1, 50_000)
    assert key == "interactions/2024-03/000000000001-000000050000.jsonl.zst"
    assert manifest_key(key) == "interactions/2024-03/000000000001-000000050000.manifest.json"


def test_months_back_clamps_to_the_end_of_a_shorter_month() -> None:
    assert months_back(datetime(2026, 3, 31, 3, tzinfo=UTC), 24) == datetime(
        2024, 3, 31, 3, tzinfo=UTC
    )
    assert months_back(datetime(2026, 2, 28, tzinfo=UTC), 24) == datetime(2024, 2, 28, tzinfo=UTC)
    assert months_back(datetime(2026, 5, 31, tzinfo=UTC), 3) == datetime(2026, 2, 28, tzinfo=UTC)
    assert purge_before(datetime(2033, 6, 10, tzinfo=UTC), 24 + 7 * 12) == date(2024, 6, 1)
    assert eligible_on(date(2024, 6, 1), 24 + 7 * 12) == date(2033, 7, 1)


@pytest.mark.parametrize("text", ["2024-3", "2024-13", "24-03", "march"])
def test_a_month_is_written_yyyy_mm(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_a_manifest_survives_its_json() -> None:
    moment = datetime(2024, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)
    manifest = Manifest(
        "interactions/2024-03/x.jsonl.zst", date(2024, 3, 1), 3, 6, 1, 3, moment, moment, 99,
        "a" * 64, "b" * 64, "0003", moment,
    )  # fmt: skip
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert b'"month": "2024-03"' in manifest.to_json()


def test_the_customer_filter_never_misses_and_rarely_lies() -> None:
    members = [f"C-{n}" for n in range(5_000)]
    stored = CustomerFilter.from_bytes(CustomerFilter.of(members).to_bytes())
    assert all(stored.might_contain(c) for c in members)
    false_positives = sum(stored.might_contain(f"X-{n}") for n in range(10_000))
    assert false_positives < 300


@pytest.mark.parametrize("count", [0, 1, 7, 3_000])
def test_the_customer_filter_sets_exactly_the_bits_its_lookups_read(count: int) -> None:
    # Filters already stored were built bit by bit from _positions; lookups still use it.
    members = [f"C-{n}" for n in range(count)] + ["", "é", 'quote"d']
    built = CustomerFilter.of(members).to_bytes()
    expected = bytearray(len(built) - 1)
    for member in members:
        for position in _positions(member, len(expected) * 8, HASHES):
            expected[position >> 3] |= 1 << (position & 7)
    assert built == bytes([HASHES]) + bytes(expected)


def test_windows_sit_on_a_fixed_grid() -> None:
    plan = Plan(datetime(2024, 1, 1, tzinfo=UTC), [MonthCount(date(2023, 1, 1), 10, 0, 95, 251)])
    assert [(w.lo, w.hi) for w in plan.windows(100)] == [(0, 100), (100, 200), (200, 300)]


def test_the_janitor_runs_monthly_on_the_maintenance_queue() -> None:
    entry = celery_config(Settings(environment="test"))["beat_schedule"]["archive-expired"]
    assert entry["task"] == "tasks.archive_expired"
    assert entry["schedule"] == crontab(minute=0, hour=3, day_of_month=1)
    assert entry["options"]["queue"] == "maintenance"
