"""Console sessions kept in the database: opened at sign-in, checked on every request, ended.

The cookie holds a random token and the database its SHA-256. A session is refused once
ended (sign-out, or a new sign-in in the same browser), once idle longer than the idle
timeout, and once past its absolute limit, whatever the cookie says. A session a provider
signed in keeps that provider's id_token, sealed, until it ends: sign-out hands it back so the
provider's session can be ended too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from config.settings import Settings
from models.base import utcnow
from models.session import SessionFactory
from models.staff_session import StaffSession
from services.support.staff import LocalDirectory, StaffUser

OIDC_PREFIX = "oidc:"
# Ended or expired rows are kept this long for the record, then deleted at a sign-in.
KEPT_AFTER_EXPIRY = timedelta(days=30)


def session_id(token: str) -> str:
    """The stored id of the session whose cookie carries ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


class StaffSessions:
    """Opens, resumes and ends console sessions; each call is one short transaction."""

    def __init__(
        self,
        sessions: SessionFactory,
        directory: LocalDirectory,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._idle = timedelta(minutes=settings.console_idle_minutes)
        self._longest = timedelta(minutes=settings.console_session_minutes)
        self._clock = clock

    def open(self, user: StaffUser, id_token: str | None = None) -> str:
        """A new session for ``user``, keeping the provider's ``id_token``; returns the token."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.execute(
                sa.delete(StaffSession).where(StaffSession.expires_at < now - KEPT_AFTER_EXPIRY)
            )
            # An id_token is kept only while its session could still be signed out of.
            session.execute(
                sa.update(StaffSession)
                .where(
                    StaffSession.id_token.is_not(None),
                    sa.or_(
                        StaffSession.ended_at.is_not(None),
                        StaffSession.expires_at <= now,
                        StaffSession.last_seen_at <= now - self._idle,
                    ),
                )
                .values(id_token=None)
            )
            session.add(
                StaffSession(
                    id=session_id(token),
                    actor=user.username,
                    display_name=user.display_name,
                    roles=list(user.roles),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self._longest,
                    id_token=id_token,
                )
            )
        return token

    def resume(self, token: str) -> StaffUser | None:
        """The user of a live session, marking it seen now; None when it has ended."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.execute(
                sa.update(StaffSession)
                .where(
                    StaffSession.id == session_id(token),
                    StaffSession.ended_at.is_(None),
                    StaffSession.expires_at > now,
                    StaffSession.last_seen_at > now - self._idle,
                )
                .values(last_seen_at=now)
                .returning(StaffSession.actor, StaffSession.display_name, StaffSession.roles)
            ).one_or_none()
        if row is None:
            return None
        actor, display_name, roles = row
        if actor.startswith(OIDC_PREFIX):
            return StaffUser(actor, tuple(str(role) for role in roles), display_name)
        # A local user's roles are read from the settings now, so removing one takes effect.
        return self._directory.lookup(actor)

    def end(self, token: str) -> str | None:
        """End the session ``token`` names, if it is still live; returns the id_token it kept."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            id_token = session.execute(
                sa.select(StaffSession.id_token)
                .where(StaffSession.id == session_id(token), StaffSession.ended_at.is_(None))
                .with_for_update()
            ).scalar_one_or_none()
            session.execute(
                sa.update(StaffSession)
                .where(StaffSession.id == session_id(token), StaffSession.ended_at.is_(None))
                .values(ended_at=now, id_token=None)
            )
        return id_token
