"""update_status(): forward only, duplicates and late events recorded, orphans kept."""

from __future__ import annotations

import sqlalchemy as sa

from models import InteractionEvent
from models.enums import InteractionStatus as S
from services.ledger.transitions import Outcome
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email


def _provider_events(db: Database) -> list[tuple[str | None, S | None, int | None]]:
    with db.sessions() as session:
        rows = session.scalars(
            sa.select(InteractionEvent)
            .where(InteractionEvent.kind == "provider_event")
            .order_by(InteractionEvent.id)
        )
        return [(e.outcome, e.to_status, e.interaction_id) for e in rows]


def test_delivered_then_opened_then_a_late_delivered(
    service: CommunicationService, db: Database
) -> None:
    sent = send_email(service).interaction
    ref = sent.provider_reference or ""
    delivered = service.update_status(ref, "delivered")
    opened = service.update_status(ref, S.OPENED)
    late = service.update_status(ref, "delivered")
    assert (delivered.outcome, delivered.previous, delivered.current) == (
        Outcome.APPLIED,
        S.SENT,
        S.DELIVERED,
    )
    assert (opened.outcome, opened.current) == (Outcome.APPLIED, S.OPENED)
    assert (late.outcome, late.current) == (Outcome.STALE, S.OPENED)
    record = service.get_history("C-1", 1).items[0]
    assert record.status is S.OPENED
    assert record.delivered_at is not None and record.opened_at is not None
    assert [o for o, _, _ in _provider_events(db)] == ["applied", "applied", "stale"]


def test_opened_implies_delivered(service: CommunicationService) -> None:
    sent = send_email(service).interaction
    service.update_status(sent.provider_reference or "", "opened")
    record = service.get_history("C-1", 1).items[0]
    assert record.status is S.OPENED
    assert record.delivered_at == record.opened_at


def test_a_bounce_after_delivery_counts_but_not_after_opening(
    service: CommunicationService,
) -> None:
    first = send_email(service).interaction
    service.update_status(first.provider_reference or "", "delivered")
    bounce = service.update_status(first.provider_reference or "", "failed", reason="bounced")
    assert (bounce.outcome, bounce.current) == (Outcome.APPLIED, S.FAILED)
    assert bounce.interaction and bounce.interaction.failure_reason == "bounced"

    second = send_email(service).interaction
    service.update_status(second.provider_reference or "", "opened")
    late = service.update_status(second.provider_reference or "", "failed")
    assert (late.outcome, late.current) == (Outcome.STALE, S.OPENED)


def test_the_same_provider_event_twice_is_applied_once(
    service: CommunicationService, db: Database
) -> None:
    ref = send_email(service).interaction.provider_reference or ""
    first = service.update_status(ref, "delivered", provider="notify", provider_event_id="ev-1")
    again = service.update_status(ref, "delivered", provider="notify", provider_event_id="ev-1")
    assert first.outcome is Outcome.APPLIED
    assert again.outcome is Outcome.DUPLICATE
    assert len(_provider_events(db)) == 1


def test_a_repeated_status_without_an_event_id_is_recorded_as_a_duplicate(
    service: CommunicationService, db: Database
) -> None:
    ref = send_email(service).interaction.provider_reference or ""
    service.update_status(ref, "delivered")
    repeat = service.update_status(ref, "delivered")
    assert repeat.outcome is Outcome.DUPLICATE
    assert [o for o, _, _ in _provider_events(db)] == ["applied", "duplicate"]


def test_our_own_reference_finds_the_interaction_before_the_provider_reference_is_saved(
    service: CommunicationService,
) -> None:
    sent = send_email(service).interaction
    update = service.update_status(str(sent.interaction_uuid), "delivered")
    assert update.outcome is Outcome.APPLIED
    assert update.interaction and update.interaction.id == sent.id


def test_an_unknown_reference_is_kept_as_an_orphan(
    service: CommunicationService, db: Database
) -> None:
    update = service.update_status("no-such-reference", "delivered", provider="notify")
    assert update.outcome is Outcome.UNKNOWN_REFERENCE
    assert update.interaction is None
    assert _provider_events(db) == [("unknown_reference", S.DELIVERED, None)]
