"""Where a batch stands: its rows, its interactions by status, and what needs a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from models.batch import Batch, BatchAction
from models.enums import InteractionStatus
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from services.errors import InvalidInput
from services.sending.batch_control import START
from services.sending.suppression import FAILURE_PREFIX

FINISHED = (
    InteractionStatus.SENT,
    InteractionStatus.DELIVERED,
    InteractionStatus.OPENED,
    InteractionStatus.FAILED,
)


@dataclass(frozen=True)
class BatchStatus:
    """A batch's totals; ``held`` counts expired claims waiting for reconciliation or a person."""

    batch_id: str
    channel: str
    template_key: str
    runs: int
    rows: int
    rejected: int
    expected: int
    by_status: dict[InteractionStatus, int]
    in_flight: int
    held: int
    released: int
    outcome_unknown: int
    # FAILED without a provider call, as the address was suppressed: counted apart.
    suppressed: int = 0
    # Who first ran its producer; None for a batch run before runs were recorded.
    started_by: str | None = None

    @property
    def finished(self) -> int:
        """Interactions that reached a status no worker is still working on."""
        return sum(self.by_status.get(s, 0) for s in FINISHED)

    @property
    def progress(self) -> float:
        """The finished share of the recipients the last run expected, from 0 to 1."""
        return min(1.0, self.finished / self.expected) if self.expected else 1.0


def batch_status(sessions: SessionFactory, batch_id: str, now: datetime) -> BatchStatus:
    """The status of ``batch_id``; InvalidInput when no such batch was ever run."""
    table = CustomerInteraction
    with sessions() as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise InvalidInput("batch_id", f"no batch {batch_id!r} has been run")
        counts = session.execute(
            sa.select(table.status, sa.func.count())
            .where(table.batch_id == batch_id)
            .group_by(table.status)
        ).all()
        pending = session.execute(
            sa.select(
                sa.func.count().filter(table.claim_expires_at >= now),
                sa.func.count().filter(table.claim_expires_at < now),
                sa.func.count().filter(table.claim_expires_at.is_(None)),
            ).where(table.batch_id == batch_id, table.status == InteractionStatus.PENDING)
        ).one()
        suppressed = session.scalar(
            sa.select(sa.func.count()).where(
                table.batch_id == batch_id,
                table.status == InteractionStatus.FAILED,
                table.failure_reason.startswith(FAILURE_PREFIX, autoescape=True),
            )
        )
        unknown = session.scalar(
            sa.select(sa.func.count()).where(
                table.batch_id == batch_id, table.outcome_unknown_at.is_not(None)
            )
        )
        started_by = session.scalar(
            sa.select(BatchAction.actor)
            .where(BatchAction.batch_id == batch_id, BatchAction.action == START)
            .order_by(BatchAction.id)
            .limit(1)
        )
    by_status = {status: int(n) for status, n in counts}
    return BatchStatus(
        batch_id=batch.id,
        channel=batch.channel.value,
        template_key=batch.template_key,
        runs=batch.runs,
        rows=batch.total_rows,
        rejected=batch.rejected,
        expected=max(batch.enqueued + batch.already_sent, sum(by_status.values())),
        by_status=by_status,
        in_flight=int(pending[0]),
        held=int(pending[1]),
        released=int(pending[2]),
        outcome_unknown=int(unknown or 0),
        suppressed=int(suppressed or 0),
        started_by=started_by,
    )
