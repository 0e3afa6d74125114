"""Parked dispatch messages: which lot a held message waits in, and sending them out again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from broker.parking import ParkingLot
from models.base import utcnow
from models.enums import SENT_CHANNELS
from providers.base import Provider
from providers.pacing import Credential, Hold, Pacer, PaceState
from providers.registry import ProviderRegistry
from services.sending.batch_control import BatchGate, Verdict
from services.sending.batches import Publisher

log = logging.getLogger(__name__)
BATCH_LOTS = "batch:"


@dataclass
class ReleaseReport:
    """What one release pass did: messages published again, and lots still held."""

    released: int = 0
    held: dict[str, int] = field(default_factory=dict)


def batch_lot(batch_id: str) -> str:
    """The lot a paused or scheduled batch's messages wait in."""
    return f"{BATCH_LOTS}{batch_id}"


def lot_of(credential: Credential, channel: str) -> str:
    """The lot a message for ``channel`` on ``credential`` waits in."""
    return f"{credential.provider}:{credential.fingerprint}:{channel}"


def park(lots: ParkingLot, provider: Provider, kwargs: dict[str, Any]) -> bool:
    """Hold one dispatch message until its provider can take it; False if it has no lot."""
    if provider.credential is None:
        return False
    lots.park(lot_of(provider.credential, kwargs["channel"]), kwargs["idempotency_key"], kwargs)
    return True


def holds(state: PaceState, channel: str) -> bool:
    """Whether ``state`` keeps messages for ``channel`` from going out now."""
    if channel in state.paused_until or state.breaker is Hold.KEY_REFUSED:
        return True
    return state.breaker is Hold.OUTAGE and (
        state.breaker_until is None or state.breaker_until > utcnow()
    )


def release_parked(
    lots: ParkingLot,
    pacer: Pacer,
    providers: ProviderRegistry,
    publisher: Publisher,
    batches: BatchGate,
) -> ReleaseReport:
    """Publish again every parked message that nothing holds any more.

    A provider lot goes when nothing holds its credential; one whose credential is no longer
    configured (the key was replaced) goes too, under the new key (held again if that one is).
    A batch lot goes when its batch is sending and due; a cancelled batch's lot is dropped.
    """
    credentials = {
        lot_of(provider.credential, "")[:-1]: provider.credential
        for provider in providers.all()
        if provider.credential is not None
    }
    report = ReleaseReport()
    for lot in lots.lots():
        if lot.startswith(BATCH_LOTS):
            _release_batch(lots, lot, batches, publisher, report)
            continue
        prefix, _, channel = lot.rpartition(":")
        credential = credentials.get(prefix)
        if credential is not None and holds(pacer.state(credential), channel):
            report.held[lot] = lots.count(lot)
            continue
        for chunk in lots.messages(lot):
            publisher.publish(chunk)
            lots.forget(lot, chunk)
            report.released += len(chunk)
        lots.forget(lot, [])
    if report.released:
        log.warning("released %d parked messages: their provider takes them again", report.released)
    return report


def release_batch(lots: ParkingLot, batch_id: str, batches: BatchGate, publisher: Publisher) -> int:
    """Publish a batch's parked messages now if it may send (a resume); how many went."""
    report = ReleaseReport()
    _release_batch(lots, batch_lot(batch_id), batches, publisher, report)
    return report.released


def _release_batch(
    lots: ParkingLot, lot: str, batches: BatchGate, publisher: Publisher, report: ReleaseReport
) -> None:
    batch_id = lot.removeprefix(BATCH_LOTS)
    verdict = batches.verdict(batch_id)
    if verdict is Verdict.HOLD:
        report.held[lot] = lots.count(lot)
        return
    for chunk in lots.messages(lot):
        if verdict is Verdict.GO:
            publisher.publish(chunk)
            report.released += len(chunk)
        lots.forget(lot, chunk)
    lots.forget(lot, [])


def parked_for(lots: ParkingLot | None, credential: Credential) -> int:
    """How many messages wait parked for ``credential``, on any channel."""
    if lots is None:
        return 0
    return sum(lots.count(lot_of(credential, channel.value)) for channel in SENT_CHANNELS)
