"""How the console shows what it read: times in the staff's zone, addresses by role, the audit.

An address, subject or body goes to a page in full only for roles that may read content
(agent, resender); a viewer's pages mask addresses and leave content out. Every page that
carried any of it in full is recorded (services.support.disclosures) as it is rendered.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from flask.sansio.app import App

from models.enums import ChannelType, InteractionStatus
from services.records import InteractionRecord
from services.support.disclosures import Shown
from services.support.masking import mask, preview
from services.support.service import ContactView
from services.support.staff import Permission
from workers.console_auth import current_user
from workers.webapp import services

LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
UTC_FORMAT = "%H:%M:%S UTC"
UTC_DATED_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
SENT_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS)


@lru_cache(maxsize=8)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_and_utc(value: datetime) -> tuple[str, str]:
    """``value`` in the console's zone, and in UTC (with its date when the dates differ)."""
    instant = value if value.tzinfo else value.replace(tzinfo=UTC)
    local = instant.astimezone(_zone(services().settings.console_time_zone))
    utc = instant.astimezone(UTC)
    shown_utc = utc.strftime(UTC_FORMAT if utc.date() == local.date() else UTC_DATED_FORMAT)
    return local.strftime(LOCAL_FORMAT), shown_utc


def reads_content() -> bool:
    """Whether the signed-in user may see addresses in full, subjects and bodies."""
    return current_user().may(Permission.READ_CONTENT)


def address_for(channel: ChannelType, address: str | None) -> str | None:
    """The address as this user may see it: in full, or masked."""
    return address if reads_content() else mask(channel, address)


def was_tried(record: InteractionRecord) -> bool:
    """Whether the address on a record was tried and refused, never sent to.

    A send refused before any provider accepted it (the validator refused the address, none
    was on file, it is suppressed, or the provider refused the request) leaves no provider
    reference and no sent time. A bounce is FAILED too, but its address was sent to.
    """
    return (
        record.status is InteractionStatus.FAILED
        and record.provider_reference is None
        and record.sent_at is None
    )


def install(app: App) -> None:
    """Give the app's templates the display helpers."""
    app.jinja_env.globals.update(
        local_and_utc=local_and_utc,
        reads_content=reads_content,
        address_for=address_for,
        was_tried=was_tried,
        preview=preview,
    )


def disclose_timeline(
    customer_id: str, contact: ContactView, records: Iterable[InteractionRecord]
) -> None:
    """Record what a timeline page showed in full, when its user may read content."""
    if not reads_content():
        return
    shown: set[Shown] = set()
    uuids: list[str] = []
    if contact.email or contact.phone:
        shown.add(Shown.ADDRESS)
    for record in records:
        kinds = _shown_on_card(record)
        if kinds:
            shown |= kinds
            uuids.append(str(record.interaction_uuid))
    services().disclosures.record(current_user().username, customer_id, "timeline", shown, uuids)


def disclose_interaction(
    customer_id: str, record: InteractionRecord, contact: ContactView | None
) -> None:
    """Record what an interaction's page showed in full, when its user may read content."""
    if not reads_content():
        return
    shown = _shown_on_card(record)
    if contact is not None and (contact.email or contact.phone):
        shown.add(Shown.ADDRESS)
    uuids = [str(record.interaction_uuid)] if shown else []
    services().disclosures.record(current_user().username, customer_id, "interaction", shown, uuids)


def _shown_on_card(record: InteractionRecord) -> set[Shown]:
    shown: set[Shown] = set()
    if record.channel not in SENT_CHANNELS:
        return shown
    if record.recipient:
        shown.add(Shown.REJECTED_ADDRESS if was_tried(record) else Shown.ADDRESS)
    if record.subject:
        shown.add(Shown.SUBJECT)
    if record.body_content:
        shown.add(Shown.BODY)
    return shown
