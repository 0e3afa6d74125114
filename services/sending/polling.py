"""Polling for outcomes whose callbacks never came: ask the provider, or say it is unknown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from config.settings import Settings
from models.enums import InteractionStatus
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from providers.base import LookupUnsupported, ProviderError
from providers.registry import ProviderRegistry
from services.callbacks import status_events
from services.callbacks.status_events import StatusEvent
from services.ledger import writes

log = logging.getLogger(__name__)
FINAL = (InteractionStatus.DELIVERED, InteractionStatus.OPENED, InteractionStatus.FAILED)


@dataclass
class PollReport:
    """What one polling pass did."""

    asked: int = 0
    updated: int = 0
    marked_unknown: int = 0
    errors: int = 0


class Poller:
    """Asks providers about SENT interactions with no final status after ``poll_after_hours``."""

    def __init__(
        self,
        sessions: SessionFactory,
        providers: ProviderRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
        batch_size: int = 500,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._settings = settings
        self._clock = clock
        self._batch_size = batch_size

    def run(self) -> PollReport:
        """One pass, oldest first, bounded to one batch of interactions."""
        now = self._clock()
        report = PollReport()
        for row in self._unfinished(now):
            if not self._ask(row, now, report):
                self._maybe_unknown(row, now, report)
        return report

    def _unfinished(self, now: datetime) -> list[CustomerInteraction]:
        table = CustomerInteraction
        cutoff = now - timedelta(hours=self._settings.poll_after_hours)
        with self._sessions() as session:
            return list(
                session.scalars(
                    sa.select(table)
                    .where(
                        table.status == InteractionStatus.SENT,
                        table.sent_at < cutoff,
                        table.outcome_unknown_at.is_(None),
                    )
                    .order_by(table.sent_at)
                    .limit(self._batch_size)
                )
            )

    def _ask(self, row: CustomerInteraction, now: datetime, report: PollReport) -> bool:
        """Whether the provider knew a final status, which is then applied."""
        try:
            provider = self._providers.for_channel(row.channel)
            found = provider.lookup(str(row.interaction_uuid))
        except LookupUnsupported:
            return False
        except ProviderError as exc:
            report.errors += 1
            context = {
                "interaction_uuid": str(row.interaction_uuid),
                "idempotency_key": row.idempotency_key,
                "batch_id": row.batch_id,
            }
            log.warning("poll lookup failed: %s", exc.reason, extra=context)
            return False
        report.asked += 1
        if not found.found or found.status not in FINAL:
            return False
        event = StatusEvent(
            reference=row.provider_reference or str(row.interaction_uuid),
            status=found.status,
            provider=provider.name,
            source="poll",
            own_reference=str(row.interaction_uuid),
        )
        status_events.apply(self._sessions, event, now)
        report.updated += 1
        return True

    def _maybe_unknown(self, row: CustomerInteraction, now: datetime, report: PollReport) -> None:
        if row.sent_at is None or row.sent_at > now - timedelta(
            hours=self._settings.unknown_after_hours
        ):
            return
        with self._sessions() as session, session.begin():
            if writes.mark_outcome_unknown(session, row.id, now, "poll"):
                report.marked_unknown += 1
