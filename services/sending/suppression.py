"""The suppression list: addresses a permanent delivery failure (or an operator) stops sends to.

Rows are keyed by the channel and the address's blind index, never the address. A dispatch to
a suppressed address is refused inside its claim transaction (one indexed lookup) and recorded
FAILED without calling the provider. Lifting keeps the row, with who lifted it and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.settings import Settings
from models.base import utcnow
from models.enums import ChannelType
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from models.suppression import ACTIVE_WHERE, Suppression
from services.errors import InvalidInput
from services.sending import validation

PERMANENT_FAILURE = "permanent failure"
ADDED_BY_OPERATOR = "added by an operator"
FAILURE_PREFIX = "suppressed: "
SUPPRESSIBLE = frozenset({ChannelType.EMAIL, ChannelType.SMS})
MAX_LIFT_REASON_CHARS = 500
_TABLE = Suppression


@dataclass(frozen=True)
class SuppressionRecord:
    """One suppression as stored: no address, only what and when."""

    id: int
    channel: ChannelType
    reason: str
    source: str
    source_interaction_uuid: uuid.UUID | None
    added_by: str | None
    suppressed_at: datetime
    expires_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None = field(repr=False)
    recipient_hash: str = field(repr=False)

    @classmethod
    def of(cls, row: Suppression) -> SuppressionRecord:
        """A detached record of ``row``."""
        return cls(
            id=row.id,
            channel=row.channel,
            reason=row.reason,
            source=row.source,
            source_interaction_uuid=row.source_interaction_uuid,
            added_by=row.added_by,
            suppressed_at=row.suppressed_at,
            expires_at=row.expires_at,
            lifted_at=row.lifted_at,
            lifted_by=row.lifted_by,
            lift_reason=row.lift_reason,
            recipient_hash=row.recipient_hash,
        )

    @property
    def failure_reason(self) -> str:
        """What a dispatch refused for this suppression records as its failure."""
        # The date spelt out: the stored reason's redaction takes 2026-12-05 for a phone number.
        return f"{FAILURE_PREFIX}{self.reason} on {self.suppressed_at:%-d %B %Y}"


def in_force(
    session: Session, channel: ChannelType, recipient_hash: str, now: datetime
) -> Suppression | None:
    """The suppression of ``recipient_hash`` on ``channel`` in force at ``now``, if any."""
    return session.scalars(
        sa.select(_TABLE).where(
            _TABLE.recipient_hash == recipient_hash,
            _TABLE.channel == channel,
            _TABLE.lifted_at.is_(None),
            _TABLE.expires_at > now,
        )
    ).one_or_none()


def refusal(session: Session, channel: ChannelType, address: str, now: datetime) -> str | None:
    """Why a dispatch to ``address`` (normalised) must not go, or None when it may."""
    if channel not in SUPPRESSIBLE:
        return None
    found = in_force(session, channel, validation.recipient_index(channel, address), now)
    return SuppressionRecord.of(found).failure_reason if found is not None else None


def suppress(
    session: Session,
    channel: ChannelType,
    recipient_hash: str,
    now: datetime,
    days: int,
    *,
    reason: str,
    source: str,
    interaction_uuid: uuid.UUID | None = None,
    actor: str | None = None,
) -> None:
    """Suppress an address for ``days``; one already suppressed is re-armed from ``now``."""
    values: dict[str, Any] = {
        "reason": reason,
        "source": source,
        "source_interaction_uuid": interaction_uuid,
        "added_by": actor,
        "suppressed_at": now,
        "expires_at": now + timedelta(days=days),
    }
    insert = (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)(_TABLE)
    session.execute(
        insert.values(
            channel=channel, recipient_hash=recipient_hash, **values
        ).on_conflict_do_update(
            index_elements=["recipient_hash", "channel"],
            index_where=sa.text(ACTIVE_WHERE),
            set_=values,
        )
    )


def lift(
    session: Session,
    channel: ChannelType,
    recipient_hash: str,
    actor: str,
    why: str,
    now: datetime,
) -> bool:
    """Lift the address's suppression, recording who and why; False when none was in place."""
    lifted = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.recipient_hash == recipient_hash,
            _TABLE.channel == channel,
            _TABLE.lifted_at.is_(None),
        )
        .values(lifted_at=now, lifted_by=actor, lift_reason=why)
        .execution_options(synchronize_session=False)
    )
    return bool(lifted.rowcount)  # type: ignore[attr-defined]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def lift_reason(value: str | None) -> str:
    """Why a suppression is lifted: 1-500 printable characters, required."""
    text = (value or "").strip()
    if not text or len(text) > MAX_LIFT_REASON_CHARS or not validation.is_printable(text):
        raise InvalidInput(
            "reason", f"say why the suppression is lifted (1-{MAX_LIFT_REASON_CHARS} characters)"
        )
    return text


def actor_name(value: str) -> str:
    """Who acts: 1-100 printable characters."""
    name = value.strip()
    if not name or len(name) > 100 or not validation.is_printable(name):
        raise InvalidInput("actor", "must be 1-100 printable characters")
    return name


class SuppressionList:
    """What operators and support staff do with the suppression list."""

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock

    def index_of(self, channel: ChannelType | str, address: str) -> tuple[ChannelType, str]:
        """The channel and blind index of ``address``, normalised; InvalidInput when unusable."""
        parsed = validation.sent_channel(channel)
        if parsed not in SUPPRESSIBLE:
            raise InvalidInput("channel", "only email and SMS addresses are suppressed")
        normalised = validation.recipient(
            parsed, address.strip(), self._settings.default_phone_region
        )
        return parsed, validation.recipient_index(parsed, normalised)

    def status(self, channel: ChannelType | str, address: str) -> SuppressionRecord | None:
        """The suppression of ``address`` in force now, if any."""
        parsed, digest = self.index_of(channel, address)
        with self._sessions() as session:
            found = in_force(session, parsed, digest, self._clock())
            return SuppressionRecord.of(found) if found is not None else None

    def of_addresses(
        self, addresses: Iterable[tuple[ChannelType, str]]
    ) -> dict[ChannelType, SuppressionRecord]:
        """The suppressions in force of a customer's addresses on file, by channel."""
        found: dict[ChannelType, SuppressionRecord] = {}
        for channel, address in addresses:
            try:
                record = self.status(channel, address)
            except InvalidInput:
                continue  # an address on file that no longer validates cannot be sent to anyway
            if record is not None:
                found[channel] = record
        return found

    def of_interaction(self, customer_id: str, interaction_uuid: str) -> SuppressionRecord | None:
        """The suppression in force of the address an interaction went to, if any."""
        with self._sessions() as session:
            target = self._target(session, customer_id, interaction_uuid)
            if target is None:
                return None
            found = in_force(session, target[0], target[1], self._clock())
            return SuppressionRecord.of(found) if found is not None else None

    def in_force(self, limit: int = 100) -> list[SuppressionRecord]:
        """The suppressions in force now, newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(_TABLE)
                .where(_TABLE.lifted_at.is_(None), _TABLE.expires_at > self._clock())
                .order_by(_TABLE.suppressed_at.desc(), _TABLE.id.desc())
                .limit(limit)
            )
            return [SuppressionRecord.of(row) for row in rows]

    def add(self, channel: ChannelType | str, address: str, actor: str) -> SuppressionRecord:
        """Suppress ``address`` by hand for the configured time."""
        parsed, digest = self.index_of(channel, address)
        who = actor_name(actor)
        now = self._clock()
        with self._sessions() as session, session.begin():
            suppress(
                session,
                parsed,
                digest,
                now,
                self._settings.suppression_days,
                reason=ADDED_BY_OPERATOR,
                source="operator",
                actor=who,
            )
            found = in_force(session, parsed, digest, now)
            assert found is not None  # just written in this transaction
            return SuppressionRecord.of(found)

    def lift(self, channel: ChannelType | str, address: str, actor: str, why: str) -> bool:
        """Lift the suppression of ``address``; False when there was none."""
        parsed, digest = self.index_of(channel, address)
        return self._lift(parsed, digest, actor, why)

    def lift_for_interaction(
        self, customer_id: str, interaction_uuid: str, actor: str, why: str
    ) -> bool:
        """Lift the suppression of the address an interaction went to; False when none."""
        with self._sessions() as session:
            target = self._target(session, customer_id, interaction_uuid)
        if target is None:
            return False
        return self._lift(target[0], target[1], actor, why)

    def _lift(self, channel: ChannelType, digest: str, actor: str, why: str) -> bool:
        reason, who = lift_reason(why), actor_name(actor)
        with self._sessions() as session, session.begin():
            return lift(session, channel, digest, who, reason, self._clock())

    @staticmethod
    def _target(
        session: Session, customer_id: str, interaction_uuid: str
    ) -> tuple[ChannelType, str] | None:
        """The channel and address index of a customer's interaction, when it has one."""
        try:
            own = uuid.UUID(interaction_uuid)
        except ValueError:
            return None
        table = CustomerInteraction
        found = session.execute(
            sa.select(table.channel, table.recipient_hash).where(
                table.interaction_uuid == own, table.customer_id == customer_id
            )
        ).one_or_none()
        if found is None or found.recipient_hash is None or found.channel not in SUPPRESSIBLE:
            return None
        return found.channel, found.recipient_hash
