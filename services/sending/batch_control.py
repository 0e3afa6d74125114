"""Steering a batch: pause, resume, cancel, a start time; and what a dispatch asks first.

The batch's row is the truth; each change is recorded with who made it and why, and so is each
run of its producer (who started it, who ran it again to resume it). Every dispatch
of a batch asks the gate before it claims anything: a paused or not-yet-due batch's messages
are parked (and go out again on resume, or when the time comes), a cancelled batch's are
dropped. The gate reads a copy of the state kept in Redis, in the same round trip as the
provider's pace slot (so a held message books no slot), and goes to the database when the copy
is missing (Redis restarted) or there is no Redis at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa

from models.base import utcnow
from models.batch import Batch, BatchAction, BatchState
from models.queued import QueuedMessage
from models.session import SessionFactory
from providers.pacing import Admission, Gate, Hold
from services.errors import InvalidInput
from services.sending import validation

PREFIX = "interactions:batch"
MIRROR_SECONDS = 7 * 24 * 3600
# The actions a run of the producer records: the first run, and each one after it.
START = "start"
RUN_AGAIN = "run_again"
# Who ran a producer whose caller did not say (a library call).
STARTER_NOT_GIVEN = "(not given)"
MAX_ACTOR_CHARS = 100


class Verdict(enum.StrEnum):
    """What a dispatch of a batch does now."""

    GO = "go"
    HOLD = "hold"  # paused, or scheduled for later: park it
    DROP = "drop"  # cancelled: never send it


@dataclass(frozen=True)
class Steering:
    """A batch's state as the gate sees it."""

    state: BatchState
    not_before: datetime | None

    def verdict(self, now: datetime) -> Verdict:
        """What a dispatch of this batch does at ``now``."""
        if self.state is BatchState.CANCELLED:
            return Verdict.DROP
        if self.state is BatchState.PAUSED:
            return Verdict.HOLD
        if self.not_before is not None and self.not_before > now:
            return Verdict.HOLD
        return Verdict.GO

    def encode(self) -> str:
        """The copy kept in Redis."""
        at = int(self.not_before.timestamp() * 1000) if self.not_before else 0
        return f"{self.state.value}|{at}"

    @classmethod
    def decode(cls, text: str) -> Steering:
        """The state a Redis copy holds."""
        state, _, at = text.partition("|")
        moment = datetime.fromtimestamp(int(at) / 1000, utcnow().tzinfo) if int(at or 0) else None
        return cls(BatchState(state), moment)


class BatchGate:
    """Answers "may this batch's message go?" and keeps the Redis copy in step."""

    def __init__(self, sessions: SessionFactory, client: redis.Redis | None) -> None:
        self._sessions = sessions
        self._redis = client

    def verdict(self, batch_id: str, now: datetime | None = None) -> Verdict:
        """What a dispatch of ``batch_id`` does now; a batch never recorded goes."""
        steering = self.steering(batch_id)
        return steering.verdict(now or utcnow()) if steering else Verdict.GO

    def steering(self, batch_id: str) -> Steering | None:
        """The batch's state, from the Redis copy or else the database."""
        if self._redis is not None:
            copy = self._redis.get(_key(batch_id))
            if copy is not None:
                return Steering.decode(copy.decode() if isinstance(copy, bytes) else str(copy))
        with self._sessions() as session:
            batch = session.get(Batch, batch_id)
            steering = Steering(batch.state, batch.not_before) if batch else None
        if steering is not None:
            self.mirror(batch_id, steering)
        return steering

    def pace_gate(self, batch_id: str) -> Gate | None:
        """The batch's Redis copy as a gate the provider's pace reads with the slot; None
        without Redis."""
        return Gate(_key(batch_id), BatchState.SENDING.value) if self._redis is not None else None

    def verdict_after(self, batch_id: str, admission: Admission, now: datetime) -> Verdict:
        """What a dispatch of ``batch_id`` does, given what its pace admission read of the gate.

        A gate that opened is GO; a closed one is decoded from the copy read; one not read (the
        provider is not paced) or with no copy (Redis restarted) is asked here as ``verdict``.
        """
        if admission.gate_read and admission.hold is not Hold.GATED:
            return Verdict.GO
        if admission.gate_copy is not None:
            return Steering.decode(admission.gate_copy).verdict(now)
        return self.verdict(batch_id, now)

    def mirror(self, batch_id: str, steering: Steering) -> None:
        """Write the Redis copy of a batch's state."""
        if self._redis is not None:
            self._redis.set(_key(batch_id), steering.encode(), ex=MIRROR_SECONDS)


@dataclass(frozen=True)
class Change:
    """What an operator's action did."""

    batch_id: str
    before: BatchState
    after: BatchState
    changed: bool


def change_state(
    sessions: SessionFactory,
    gate: BatchGate,
    batch_id: str,
    action: str,
    actor: str,
    reason: str | None,
) -> Change:
    """Pause, resume or cancel ``batch_id``, recorded with who and why; idempotent."""
    targets = {
        "pause": BatchState.PAUSED,
        "resume": BatchState.SENDING,
        "cancel": BatchState.CANCELLED,
    }
    after = targets[action]
    with sessions() as session, session.begin():
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is None:
            raise InvalidInput("batch_id", f"no batch {batch_id!r} has been run")
        before = batch.state
        if before is BatchState.CANCELLED and after is not BatchState.CANCELLED:
            raise InvalidInput("batch_id", f"batch {batch_id!r} was cancelled; it cannot {action}")
        changed = before is not after
        if changed:
            batch.state = after
            batch.updated_at = utcnow()
            session.add(
                BatchAction(
                    batch_id=batch_id, action=action, actor=actor, reason=reason, at=utcnow()
                )
            )
            if after is BatchState.CANCELLED:
                # What was published and never claimed is dropped, not published again.
                session.execute(sa.delete(QueuedMessage).where(QueuedMessage.batch_id == batch_id))
        steering = Steering(batch.state, batch.not_before)
    gate.mirror(batch_id, steering)
    return Change(batch_id, before, after, changed)


def starter(name: str | None) -> str:
    """Who ran the producer, as recorded: the name given, trimmed, or that none was."""
    if name is None:
        return STARTER_NOT_GIVEN
    name = name.strip()
    if not name or len(name) > MAX_ACTOR_CHARS or not validation.is_printable(name):
        raise InvalidInput("started_by", f"must be 1-{MAX_ACTOR_CHARS} printable characters")
    return name


def run_recorded(batch_id: str, runs: int, started_by: str) -> BatchAction:
    """The history row of a producer's run: ``start`` for the first, ``run_again`` after."""
    action = START if runs <= 1 else RUN_AGAIN
    return BatchAction(batch_id=batch_id, action=action, actor=started_by, at=utcnow())


def forget_dropped(sessions: SessionFactory, idempotency_key: str) -> None:
    """A cancelled batch's message was dropped: nothing should publish it again."""
    with sessions() as session, session.begin():
        session.execute(
            sa.delete(QueuedMessage).where(QueuedMessage.idempotency_key == idempotency_key)
        )


def actions(sessions: SessionFactory, batch_id: str) -> list[BatchAction]:
    """A batch's history of operators' actions and producer runs, oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(BatchAction)
                .where(BatchAction.batch_id == batch_id)
                .order_by(BatchAction.id)
            )
        )


def _key(batch_id: str) -> str:
    return f"{PREFIX}:{batch_id}"
