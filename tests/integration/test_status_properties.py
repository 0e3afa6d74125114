"""Property: any order of any callbacks ends where the forward-only rule says, even in parallel."""

from __future__ import annotations

import functools
import threading
import uuid

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from models import InteractionEvent
from models.enums import InteractionStatus as S
from providers.registry import ProviderRegistry
from services.ledger.transitions import decide
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.fakes import FakeProvider

CALLBACK_STATUSES = st.sampled_from([S.SENT, S.DELIVERED, S.OPENED, S.FAILED])
EVENTS = st.lists(CALLBACK_STATUSES, min_size=1, max_size=8).flatmap(st.permutations)
RULES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fold(start: S, events: list[S]) -> S:
    """The forward-only rule applied in order."""
    return functools.reduce(lambda status, event: decide(status, event).new_status, events, start)


def _sent_interaction(service: CommunicationService) -> tuple[str, str]:
    key = f"prop-{uuid.uuid4()}"
    result = service.dispatch("C-1", "email", "welcome", {}, key, "ada@example.org")
    return result.interaction.provider_reference or "", str(result.interaction.id)


def _applied_order(db: Database, interaction_id: str) -> list[S]:
    with db.sessions() as session:
        rows = session.scalars(
            sa.select(InteractionEvent.to_status)
            .where(
                InteractionEvent.interaction_id == int(interaction_id),
                InteractionEvent.kind == "provider_event",
            )
            .order_by(InteractionEvent.id)
        ).all()
    return [S(r) for r in rows]


@RULES
@given(events=EVENTS)
def test_callbacks_in_any_order_end_as_the_rule_says(
    committed_pg: Database, test_settings: Settings, events: list[S]
) -> None:
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(FakeProvider()), test_settings
    )
    reference, interaction_id = _sent_interaction(service)
    for event in events:
        service.update_status(reference, event)
    final = service.get_history("C-1", 1).items[0]
    assert final.status is fold(S.SENT, events)
    assert _applied_order(committed_pg, interaction_id) == events
    if not {S.OPENED, S.FAILED} <= set(events):
        # Without a late bounce racing an open, the order cannot matter at all.
        assert final.status is fold(S.SENT, sorted(events, key=list(S).index))


@RULES
@given(events=EVENTS)
def test_callbacks_racing_on_two_workers_end_as_in_some_sequence(
    committed_pg: Database, test_settings: Settings, events: list[S]
) -> None:
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(FakeProvider()), test_settings
    )
    reference, interaction_id = _sent_interaction(service)
    halves = [events[::2], events[1::2]]
    start = threading.Barrier(2)

    def worker(mine: list[S]) -> None:
        start.wait()
        for event in mine:
            service.update_status(reference, event)

    threads = [threading.Thread(target=worker, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    order = _applied_order(committed_pg, interaction_id)
    assert sorted(order, key=list(S).index) == sorted(events, key=list(S).index)
    final = service.get_history("C-1", 1).items[0]
    assert final.status is fold(S.SENT, order)
    if not {S.OPENED, S.FAILED} <= set(events):
        assert final.status is fold(S.SENT, sorted(events, key=list(S).index))
