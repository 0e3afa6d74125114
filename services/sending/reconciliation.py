"""Reconciliation: settle claims whose worker vanished, by asking the provider, never by guessing.

A PENDING row past its lease may or may not have reached the provider. Found there means
SENT; not found means the claim is released and the dispatch enqueued again; a provider that
cannot be asked (SMTP) leaves the claim held for a person to decide.
"""

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
from providers.base import LookupUnsupported, ProviderError, SendReceipt
from providers.registry import ProviderRegistry
from services.callbacks import inbox
from services.ledger.transitions import Outcome
from services.sending import claims, queued
from services.sending.batches import DispatchMessage, Publisher
from services.sending.claims import Claim, ClaimState
from telemetry import metrics

log = logging.getLogger(__name__)
SOURCE = "reconciler"


@dataclass
class ReconcileReport:
    """What one reconciliation pass did."""

    confirmed_sent: int = 0
    released: int = 0
    requeued: int = 0
    held: int = 0
    lookup_errors: int = 0
    callbacks_matched: int = 0
    republished: int = 0


class Reconciler:
    """Settles expired claims and re-enqueues released ones that nobody picked up."""

    def __init__(
        self,
        sessions: SessionFactory,
        providers: ProviderRegistry,
        publisher: Publisher,
        settings: Settings,
        clock: Callable[[], datetime],
        broker_epoch: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._publisher = publisher
        self._settings = settings
        self._clock = clock
        self._broker_epoch = broker_epoch

    def run(self) -> ReconcileReport:
        """One pass over expired and forgotten claims, in bounded batches."""
        report = ReconcileReport()
        for row in self._expired_claims():
            self._settle(row, report)
        self._requeue_forgotten(report)
        self._republish_lost(report)
        self._settle_callbacks(report)
        return report

    def _republish_lost(self, report: ReconcileReport) -> None:
        """Messages a broker that restarted empty lost before any worker claimed them."""
        limit = self._settings.reconcile_batch_size
        queued.forget_claimed(self._sessions, limit * 10)
        epoch = self._broker_epoch()
        if epoch is None:
            return
        while count := queued.publish_lost(
            self._sessions, self._publisher, epoch, self._clock(), limit
        ):
            report.republished += count
            if count < limit:
                return

    def _settle_callbacks(self, report: ReconcileReport) -> None:
        """Callbacks unmatched after their retries: apply them if their interaction exists now."""
        now = self._clock()
        window = timedelta(seconds=self._settings.status_retry_window_seconds + 60)
        for inbound_id in inbox.unsettled(
            self._sessions, window, now, self._settings.reconcile_batch_size
        ):
            outcome = inbox.apply(self._sessions, inbound_id, final=True, now=now)
            if outcome is not Outcome.UNKNOWN_REFERENCE:
                report.callbacks_matched += 1

    def _expired_claims(self) -> list[CustomerInteraction]:
        table = CustomerInteraction
        with self._sessions() as session:
            return list(
                session.scalars(
                    sa.select(table)
                    .where(
                        table.status == InteractionStatus.PENDING,
                        table.claim_expires_at < self._clock(),
                    )
                    .order_by(table.claim_expires_at)
                    .limit(self._settings.reconcile_batch_size)
                )
            )

    def _settle(self, row: CustomerInteraction, report: ReconcileReport) -> None:
        claim = Claim(ClaimState.CLAIMED, row.id, row.interaction_uuid, row.attempt_count)
        context = {
            "interaction_uuid": str(row.interaction_uuid),
            "idempotency_key": row.idempotency_key,
            "batch_id": row.batch_id,
        }
        try:
            provider = self._providers.for_channel(row.channel)
            found = provider.lookup(str(row.interaction_uuid))
        except LookupUnsupported:
            report.held += 1
            return
        except ProviderError as exc:
            report.lookup_errors += 1
            log.warning("lookup failed, will try again: %s", exc.reason, extra=context)
            return
        now = self._clock()
        if found.found:
            receipt = SendReceipt(
                provider.name, found.provider_reference or str(row.interaction_uuid)
            )
            with self._sessions() as session, session.begin():
                claims.record_sent(session, claim, receipt, now, source=SOURCE)
            report.confirmed_sent += 1
            metrics.status_reached(InteractionStatus.SENT, row.channel, provider.name)
            log.info("provider has the message; recorded SENT", extra=context)
            return
        with self._sessions() as session, session.begin():
            released = claims.release(
                session, claim, "not found at the provider after the claim expired", now, SOURCE
            )
        if released:
            report.released += 1
            self._publisher.publish([_message(row)])
            report.requeued += 1

    def _requeue_forgotten(self, report: ReconcileReport) -> None:
        """Released claims whose retry never came (a lost message): enqueue them again."""
        table = CustomerInteraction
        now = self._clock()
        cutoff = now - timedelta(seconds=self._settings.released_grace_seconds)
        with self._sessions() as session, session.begin():
            rows = list(
                session.scalars(
                    sa.select(table)
                    .where(
                        table.status == InteractionStatus.PENDING,
                        table.claim_expires_at.is_(None),
                        table.updated_at < cutoff,
                    )
                    .limit(self._settings.reconcile_batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.updated_at = now
            messages = [_message(row) for row in rows]
        if messages:
            self._publisher.publish(messages)
            report.requeued += len(messages)


def _message(row: CustomerInteraction) -> DispatchMessage:
    payload = (row.meta_data or {}).get("payload") or {}
    return DispatchMessage(
        idempotency_key=row.idempotency_key,
        customer_id=row.customer_id,
        channel=row.channel.value,
        template_key=row.template_key or "",
        payload=payload,
        recipient=row.recipient,
        batch_id=row.batch_id,
        reply_to_id=(row.meta_data or {}).get("reply_to_id"),
    )
