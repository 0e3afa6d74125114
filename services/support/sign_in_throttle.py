"""Throttling console sign-ins, per user name and per client address, in the database.

An attempt is reserved before its password is checked: under a lock per subject (the name
and the address), the recent failures are counted and, when the attempt may go ahead, a
failure is recorded for it at once, in one transaction. Concurrent guesses therefore queue on
the lock and each sees the others' failures; a correct password then removes the attempt's
rows. A name that failed too often is not locked: each further attempt waits a delay that
doubles per failure, so its owner waits seconds, not the whole window. An address is refused
once it has failed far more often than any person would. Subjects are stored as SHA-256
hashes, so the table names no one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from config.settings import Settings
from models.base import utcnow
from models.session import SessionFactory
from models.sign_in_failure import SignInFailure

# Doubling stops here; the delay is capped by the window long before.
MAX_DOUBLINGS = 20


def _subject(kind: str, value: str) -> str:
    """The stored form of a subject: the hex SHA-256 of its kind and value."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _lock_key(subject: str) -> int:
    """A PostgreSQL advisory lock key for a subject: its hash's first 64 bits, signed."""
    return int.from_bytes(bytes.fromhex(subject[:16]), "big", signed=True)


@dataclass(frozen=True)
class Attempt:
    """A sign-in let through to the password check, already counted as a failure."""

    username: str
    row_ids: tuple[int, ...]


@dataclass(frozen=True)
class Refusal:
    """A sign-in refused before its password is checked, and how long to wait."""

    retry_after: timedelta


class SignInThrottle:
    """Reserves sign-in attempts and says when a user name or an address must wait."""

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._per_user = settings.console_sign_in_failures_per_user
        self._per_address = settings.console_sign_in_failures_per_address
        self._base_delay = timedelta(seconds=settings.console_sign_in_delay_seconds)
        self.window = timedelta(minutes=settings.console_sign_in_window_minutes)
        self._clock = clock

    def reserve(self, username: str, address: str) -> Attempt | Refusal:
        """Count this attempt as a failure now, unless the name or address must wait."""
        user, place = _subject("user", username.lower()), _subject("address", address)
        now = self._clock()
        with self._sessions() as session, session.begin():
            _lock(session, (user, place))
            _forget_before(session, now - self.window)
            wait = max(self._user_wait(session, user, now), self._address_wait(session, place, now))
            if wait > timedelta(0):
                return Refusal(wait)
            rows = [
                SignInFailure(subject=user, failed_at=now),
                SignInFailure(subject=place, failed_at=now),
            ]
            session.add_all(rows)
            session.flush()
            return Attempt(username, tuple(row.id for row in rows))

    def succeeded(self, attempt: Attempt) -> None:
        """Drop the attempt's rows and forget the name's failures: its owner has signed in."""
        user = _subject("user", attempt.username.lower())
        with self._sessions() as session, session.begin():
            session.execute(
                sa.delete(SignInFailure).where(
                    sa.or_(SignInFailure.id.in_(attempt.row_ids), SignInFailure.subject == user)
                )
            )

    def _user_wait(self, session: Session, user: str, now: datetime) -> timedelta:
        """How long the name must still wait: a delay doubling per failure past the limit."""
        count, _, last = self._recent(session, user, now)
        if count < self._per_user or last is None:
            return timedelta(0)
        doublings = min(count - self._per_user, MAX_DOUBLINGS)
        return last + min(self._base_delay * (1 << doublings), self.window) - now

    def _address_wait(self, session: Session, place: str, now: datetime) -> timedelta:
        """How long the address must still wait: until its oldest failure leaves the window."""
        count, first, _ = self._recent(session, place, now)
        if count < self._per_address or first is None:
            return timedelta(0)
        return first + self.window - now

    def _recent(
        self, session: Session, subject: str, now: datetime
    ) -> tuple[int, datetime | None, datetime | None]:
        """The subject's failures within the window: how many, the first and the last."""
        failed_at = SignInFailure.failed_at
        row = session.execute(
            sa.select(sa.func.count(), sa.func.min(failed_at), sa.func.max(failed_at)).where(
                SignInFailure.subject == subject, failed_at > now - self.window
            )
        ).one()
        count: int = row[0]
        first: datetime | None = row[1]
        last: datetime | None = row[2]
        return count, first, last


def _lock(session: Session, subjects: tuple[str, ...]) -> None:
    """Hold each subject's advisory lock until the transaction ends (PostgreSQL only)."""
    # SQLite takes its one write lock at BEGIN IMMEDIATE, which serialises reservations there.
    if session.get_bind().dialect.name != "postgresql":
        return
    # Always in the same order, so two attempts sharing a subject cannot deadlock.
    for key in sorted({_lock_key(subject) for subject in subjects}):
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _forget_before(session: Session, moment: datetime) -> None:
    """Delete failures older than ``moment`` that no other transaction is deleting."""
    # SKIP LOCKED: two reservations for different subjects never wait on, or deadlock over,
    # the same stale rows; whichever comes next deletes what one skipped.
    stale = (
        sa.select(SignInFailure.id)
        .where(SignInFailure.failed_at <= moment)
        .with_for_update(skip_locked=True)
    )
    session.execute(sa.delete(SignInFailure).where(SignInFailure.id.in_(stale)))
