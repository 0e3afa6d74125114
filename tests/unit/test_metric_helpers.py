"""What the metric helpers count: statuses passed through, once, with the labels given."""

from __future__ import annotations

from prometheus_client import REGISTRY

from config.settings import Settings
from models.enums import InteractionStatus as S
from telemetry import metrics


def _value(name: str, channel: str = "sms", provider: str = "unit") -> float:
    labels = {"channel": channel, "provider": provider}
    return REGISTRY.get_sample_value(f"interactions_{name}_total", labels) or 0.0


def _snapshot() -> dict[str, float]:
    return {n: _value(n) for n in ("created", "sent", "delivered", "opened", "failed")}


def _delta(before: dict[str, float]) -> dict[str, float]:
    return {n: v - before[n] for n, v in _snapshot().items() if v != before[n]}


def test_opened_straight_after_sent_counts_delivered_too() -> None:
    before = _snapshot()
    metrics.status_changed(S.SENT, S.OPENED, "sms", "unit")
    assert _delta(before) == {"delivered": 1, "opened": 1}


def test_opened_after_delivered_and_repeats_count_once() -> None:
    before = _snapshot()
    metrics.status_changed(S.DELIVERED, S.OPENED, "sms", "unit")
    metrics.status_changed(S.OPENED, S.OPENED, "sms", "unit")
    metrics.status_changed(S.PENDING, S.SENT, "sms", "unit")  # SENT is counted at the send
    assert _delta(before) == {"opened": 1}


def test_a_first_attempt_creates_and_a_missing_address_fails() -> None:
    before = _snapshot()
    metrics.attempt_claimed("sms", "unit", 1, failed=False)
    metrics.attempt_claimed("sms", "unit", 2, failed=True)
    assert _delta(before) == {"created": 1, "failed": 1}


def test_giving_up_counts_under_the_configured_provider() -> None:
    settings = Settings(environment="test", sms_provider="notify", notify_api_key="x")  # type: ignore[arg-type]
    before = _value("failed", provider="notify")
    metrics.gave_up("sms", settings)
    assert _value("failed", provider="notify") == before + 1


def test_janitor_rows_are_counted_by_table() -> None:
    name = "interactions_archived_rows_total"
    before = REGISTRY.get_sample_value(name, {"table": "interaction_events"}) or 0.0
    metrics.archived_rows(250, table="interaction_events")
    metrics.archived_rows(0, table="interaction_events")
    assert REGISTRY.get_sample_value(name, {"table": "interaction_events"}) == before + 250
