"""Two resends of one message at the same moment, on committed PostgreSQL: one wins."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models.enums import EventKind, InteractionStatus
from models.event import InteractionEvent
from providers.registry import ProviderRegistry
from services.records import InteractionRecord
from services.sending.communication import CommunicationService
from services.support.service import ResendConflict, ResendResult, SupportService
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue
from tests.fakes import FakeProvider

CUSTOMER = "C-RACE-1"


def _both_at_once(call: Callable[[str], ResendResult]) -> list[ResendResult | Exception]:
    start = threading.Barrier(2)
    results: list[ResendResult | Exception] = []

    def run(actor: str) -> None:
        start.wait()
        try:
            results.append(call(actor))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a.gent", "b.gent")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _staff_events(db: Database, interaction_id: int) -> list[InteractionEvent]:
    with db.sessions() as session:
        return list(
            session.scalars(
                sa.select(InteractionEvent).where(
                    InteractionEvent.interaction_id == interaction_id,
                    InteractionEvent.kind == EventKind.STAFF_ACTION,
                )
            )
        )


@pytest.fixture
def service(
    committed_pg: Database, test_settings: Settings, provider: FakeProvider
) -> CommunicationService:
    return CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(provider), test_settings
    )


def _attempts(db: Database, record: InteractionRecord) -> int:
    with db.sessions() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(InteractionEvent)
                .where(
                    InteractionEvent.interaction_id == record.id,
                    InteractionEvent.kind == EventKind.ATTEMPT_STARTED,
                )
            )
            or 0
        )


def test_two_resends_of_a_failed_message_make_one_event_one_task_and_one_attempt(
    committed_pg: Database,
    service: CommunicationService,
    provider: FakeProvider,
    test_settings: Settings,
) -> None:
    service.upsert_contact(CUSTOMER, "old@example.org", None)
    provider.fail_next(provider.permanent("the address bounced"))
    failed = service.dispatch(CUSTOMER, "email", "welcome", {}, "k-race", None).interaction
    assert failed.status is InteractionStatus.FAILED and _attempts(committed_pg, failed) == 1
    queue = CapturedQueue()
    support = SupportService(committed_pg.sessions, queue, test_settings)

    results = _both_at_once(
        lambda actor: support.resend(
            CUSTOMER, str(failed.interaction_uuid), actor, "new@example.org", None
        )
    )
    assert sorted(type(r).__name__ for r in results) == ["ResendConflict", "ResendResult"]
    [refused] = [r for r in results if isinstance(r, ResendConflict)]
    assert "already queued" in str(refused)
    assert len(_staff_events(committed_pg, failed.id)) == 1
    [message] = queue.messages
    sent_before = len(provider.sent)

    # The task, delivered twice by the broker: the first takes the row, the second finds it sent.
    first = service.dispatch(**message.as_kwargs())
    second = service.dispatch(**message.as_kwargs())
    assert first.interaction.status is InteractionStatus.SENT
    assert first.interaction.attempt_count == 2 and second.interaction.attempt_count == 2
    assert len(provider.sent) == sent_before + 1
    assert provider.sent[-1].recipient == "new@example.org"
    assert _attempts(committed_pg, failed) == 2


def test_two_forced_resends_from_the_same_page_make_one_new_message(
    committed_pg: Database, service: CommunicationService, test_settings: Settings
) -> None:
    service.upsert_contact(CUSTOMER, "here@example.org", None)
    sent = service.dispatch(CUSTOMER, "email", "welcome", {}, "k-race-sent", None).interaction
    assert sent.status is InteractionStatus.SENT
    queue = CapturedQueue()
    support = SupportService(committed_pg.sessions, queue, test_settings)

    results = _both_at_once(
        lambda actor: support.resend(
            CUSTOMER, str(sent.interaction_uuid), actor, None, "Customer lost it", 0
        )
    )
    assert sorted(type(r).__name__ for r in results) == ["ResendConflict", "ResendResult"]
    assert [m.idempotency_key for m in queue.messages] == [f"resend:{sent.interaction_uuid}:1"]
    assert [e.outcome for e in _staff_events(committed_pg, sent.id)] == ["forced_resend"]
