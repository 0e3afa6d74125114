"""Throttling failed console sign-ins, per user name and per client address, in the database.

Each failure is a row counted against both subjects; once either has too many within the
window, sign-in is refused for it until the oldest failure leaves the window. Subjects are
stored as SHA-256 hashes, so the table names no one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from config.settings import Settings
from models.base import utcnow
from models.session import SessionFactory
from models.sign_in_failure import SignInFailure


def _subject(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


class SignInThrottle:
    """Counts failed sign-ins and says when a user name or an address must wait."""

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._per_user = settings.console_sign_in_failures_per_user
        self._per_address = settings.console_sign_in_failures_per_address
        self.window = timedelta(minutes=settings.console_sign_in_window_minutes)
        self._clock = clock

    def blocked(self, username: str, address: str) -> bool:
        """Whether this user name or this address has failed too often lately."""
        user, place = _subject("user", username.lower()), _subject("address", address)
        since = self._clock() - self.window
        with self._sessions() as session:
            found = session.execute(
                sa.select(SignInFailure.subject, sa.func.count())
                .where(SignInFailure.subject.in_((user, place)), SignInFailure.failed_at > since)
                .group_by(SignInFailure.subject)
            )
            counts = {subject: int(count) for subject, count in found}
        return counts.get(user, 0) >= self._per_user or counts.get(place, 0) >= self._per_address

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in against the user name and the address."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.execute(
                sa.delete(SignInFailure).where(SignInFailure.failed_at < now - self.window)
            )
            session.add_all(
                [
                    SignInFailure(subject=_subject("user", username.lower()), failed_at=now),
                    SignInFailure(subject=_subject("address", address), failed_at=now),
                ]
            )

    def succeeded(self, username: str) -> None:
        """Forget the user name's failures once its owner has signed in."""
        with self._sessions() as session, session.begin():
            session.execute(
                sa.delete(SignInFailure).where(
                    SignInFailure.subject == _subject("user", username.lower())
                )
            )
