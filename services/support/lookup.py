"""What staff look up during a call: is this our customer, whose address is this, which batch.

A search takes one box: its format picks the channel (an "@" makes it an email address, digits
a phone number), and the normalised address is found through the keyed blind index in both the
contact directory and the interactions, so nothing is decrypted to search and the address is
never written anywhere.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from models.base import utcnow
from models.batch import Batch, BatchState
from models.contact import Contact
from models.enums import ChannelType
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from services.archive.stores.port import ArchiveStore
from services.archive.timeline import in_archive
from services.errors import InvalidInput
from services.sending import batch_control, validation
from services.sending.batch_status import BatchStatus, batch_status

log = logging.getLogger(__name__)

# Digits with the separators people type in a phone number, and an optional leading +.
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")
MAX_FOUND = 50


class Standing(enum.Enum):
    """What is held for a customer id: a record, only archived history, or nothing."""

    ON_RECORD = "on record"  # a contact entry or an interaction in the database
    ARCHIVED = "archived"  # nothing in the database, interactions in the cold archive
    NO_RECORD = "no record"
    UNCHECKED = "unchecked"  # nothing in the database, and the archive could not be read

    @property
    def confirm_note(self) -> bool:
        """Whether a note against this id waits for a yes: no record of it is known."""
        return self in (Standing.NO_RECORD, Standing.UNCHECKED)


@dataclass(frozen=True)
class Found:
    """A customer an address belongs to: on file in the directory, sent to, or both."""

    customer_id: str
    on_file: bool
    sent_to: bool


@dataclass(frozen=True)
class Search:
    """The channel the input was read as, and the customers found."""

    channel: ChannelType
    customers: list[Found]


@dataclass(frozen=True)
class Step:
    """One action on a batch (a run of its producer, a pause...): what, who, when, and why."""

    action: str
    actor: str
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class BatchView:
    """A batch as a call needs it: how it went, where it stands, who ran and steered it."""

    status: BatchStatus
    state: BatchState
    not_before: datetime | None
    started_at: datetime
    source: str | None
    steps: list[Step]

    @property
    def steered(self) -> bool:
        """Whether anyone paused, resumed or cancelled it (runs of its producer aside)."""
        runs = (batch_control.START, batch_control.RUN_AGAIN)
        return any(step.action not in runs for step in self.steps)

    @property
    def scheduled(self) -> bool:
        """Whether the batch waits for a start time still ahead."""
        return self.not_before is not None and self.not_before > utcnow()


def channel_of(text: str) -> ChannelType:
    """The channel a search's input is written for."""
    if "@" in text:
        return ChannelType.EMAIL
    if _PHONE_LIKE.match(text):
        return ChannelType.SMS
    raise InvalidInput(
        "address", "enter an email address (with an @) or a phone number (digits, + allowed)"
    )


class CallLookup:
    """The console's look-ups for a call, each one short read."""

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        archive: Callable[[], ArchiveStore] | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._archive = archive

    def standing(self, customer_id: str) -> Standing:
        """Whether the customer is on record, only in the archive, or nowhere."""
        if self.is_known(customer_id):
            return Standing.ON_RECORD
        if self._archive is None:
            return Standing.NO_RECORD
        try:
            archived = in_archive(self._sessions, self._archive, customer_id)
        except SQLAlchemyError:
            raise  # the database away: the page says so, as it does for every other read
        except Exception as exc:  # the store's errors vary by kind (a directory, S3)
            log.warning("archive not read for a customer look-up: %s", type(exc).__name__)
            return Standing.UNCHECKED
        return Standing.ARCHIVED if archived else Standing.NO_RECORD

    def is_known(self, customer_id: str) -> bool:
        """Whether the customer has a contact entry or any interaction still in the database."""
        customer = validation.customer_id(customer_id)
        with self._sessions() as session:
            if session.get(Contact, customer) is not None:
                return True
            return (
                session.scalar(
                    sa.select(CustomerInteraction.id)
                    .where(CustomerInteraction.customer_id == customer)
                    .limit(1)
                )
                is not None
            )

    def is_address(self, text: str) -> bool:
        """Whether ``text`` reads as an email address or a phone number, not a customer id."""
        try:
            channel = channel_of(text.strip())
            validation.recipient(channel, text.strip(), self._settings.default_phone_region)
        except InvalidInput:
            return False
        return True

    def find(self, text: str) -> Search:
        """The customers with this address on file or sent something at it, directory first."""
        text = text.strip()
        channel = channel_of(text)
        normalised = validation.recipient(channel, text, self._settings.default_phone_region)
        digest = validation.recipient_index(channel, normalised)
        column = Contact.email_hash if channel is ChannelType.EMAIL else Contact.phone_hash
        table = CustomerInteraction
        with self._sessions() as session:
            on_file = list(
                session.scalars(
                    sa.select(Contact.customer_id)
                    .where(column == digest)
                    .order_by(Contact.customer_id)
                    .limit(MAX_FOUND)
                )
            )
            sent_to = list(
                session.scalars(
                    sa.select(table.customer_id)
                    .where(table.recipient_hash == digest, table.channel == channel)
                    .group_by(table.customer_id)
                    .order_by(sa.func.max(table.created_at).desc())
                    .limit(MAX_FOUND)
                )
            )
        ids = list(dict.fromkeys([*on_file, *sent_to]))[:MAX_FOUND]
        found = [Found(c, c in on_file, c in sent_to) for c in ids]
        return Search(channel, found)

    def batch(self, batch_id: str) -> BatchView:
        """How the batch went and who steered it; InvalidInput when there is no such batch."""
        status = batch_status(self._sessions, batch_id, self._clock())
        with self._sessions() as session:
            batch = session.get_one(Batch, batch_id)
            state, not_before = batch.state, batch.not_before
            started_at, source = batch.created_at, batch.source
        steps = [
            Step(action.action, action.actor, action.at, action.reason)
            for action in batch_control.actions(self._sessions, batch_id)
        ]
        return BatchView(status, state, not_before, started_at, source, steps)
