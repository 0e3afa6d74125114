"""API keys: made once and shown once, kept as hashes, several live per client, revocable."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from models.api_key import CLIENT_NAME_MAX, ApiKey
from models.base import utcnow
from models.session import SessionFactory
from services.clients.identity import Caller, Scope, Unauthenticated
from services.clients.key_cache import Found, KeyCache
from services.clients.rate import PREFIX as RATE_PREFIX
from services.clients.rate import RateLimit, Verdict
from services.errors import InvalidInput

PREFIX = "ik"
KNOWN = frozenset(scope.value for scope in Scope)
# last_used_at is written at most this often per key, so each request is not also a write.
LAST_USE_RESOLUTION = timedelta(minutes=1)
_CLIENT = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{CLIENT_NAME_MAX - 1}}}$")
# Table columns, not mapped attributes: the ORM's statement machinery stays out of it.
_KEYS = ApiKey.__table__.c
_LOOKUP = sa.select(
    _KEYS.secret_sha256, _KEYS.client, _KEYS.scopes, _KEYS.revoked_at, _KEYS.last_used_at
).where(_KEYS.key_id == sa.bindparam("key_id"))
_KEY = re.compile(rf"^{PREFIX}_([a-z0-9]{{12}})_([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class NewKey:
    """A key just made: the secret is here once and never again."""

    key_id: str
    client: str
    secret: str
    scopes: frozenset[Scope]


@dataclass(frozen=True)
class KeyListing:
    """A key as listed: never its secret."""

    key_id: str
    client: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def digest(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    """Makes, checks, lists and revokes API keys."""

    def __init__(
        self,
        sessions: SessionFactory,
        clock: Callable[[], datetime] = utcnow,
        cache: KeyCache | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._cache = cache

    def create(self, client: str, scopes: frozenset[Scope]) -> NewKey:
        """A new key for ``client`` with ``scopes``; its secret is returned and never stored."""
        if not _CLIENT.match(client or ""):
            raise InvalidInput("client", "must be 1-64 letters, digits, '.', '_' or '-'")
        if not scopes:
            raise InvalidInput("scopes", "name at least one scope")
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self._sessions() as session, session.begin():
            session.add(
                ApiKey(
                    key_id=key_id,
                    secret_sha256=digest(secret),
                    client=client,
                    scopes=sorted(scope.value for scope in scopes),
                    created_at=self._clock(),
                )
            )
        return NewKey(key_id, client, secret, scopes)

    def authenticate(self, presented: str) -> Caller:
        """The client a live key belongs to; Unauthenticated for anything else.

        One read of the key's columns, no ORM object: it runs on every request. The last use
        is written only when the stored one is over ``LAST_USE_RESOLUTION`` old.
        """
        match = _KEY.match(presented or "")
        if match is None:
            raise Unauthenticated
        key_id = match.group(1)
        now = self._clock()
        with self._sessions() as session:
            row = session.execute(_LOOKUP, {"key_id": key_id}).one_or_none()
            if row is None or row.revoked_at is not None:
                raise Unauthenticated
            if not hmac.compare_digest(row.secret_sha256, digest(presented)):
                raise Unauthenticated
            if row.last_used_at is None or row.last_used_at < now - LAST_USE_RESOLUTION:
                session.execute(
                    sa.update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=now)
                )
                session.commit()
        if self._cache is not None:
            self._cache.remember(key_id, row.secret_sha256, row.client, list(row.scopes))
        return Caller(row.client, frozenset(Scope(s) for s in row.scopes if s in KNOWN))

    def admit(self, presented: str, rate: RateLimit) -> tuple[Caller, Verdict]:
        """The key's client, its request counted against ``rate``: one Redis round trip.

        The key's record cached in Redis is checked and the request counted by one script;
        only a key not cached (first use, or its record expired) is read from PostgreSQL and
        then counted apart. Unauthenticated for a key that is not live, never counted.
        """
        match = _KEY.match(presented or "")
        if match is None:
            raise Unauthenticated
        if self._cache is not None and rate.counted:
            window, expiry = rate.window()
            checked = self._cache.check_and_count(
                match.group(1), digest(presented), RATE_PREFIX, window, expiry
            )
            if checked.found is Found.REFUSED:
                raise Unauthenticated
            if checked.caller is not None:
                return checked.caller, rate.verdict(checked.count, window)
        found = self.authenticate(presented)
        return found, rate.check(found.client)

    def revoke(self, key_id: str) -> bool:
        """Revoke one key at once; False when there is no live key ``key_id``."""
        with self._sessions() as session, session.begin():
            revoked = session.execute(
                sa.update(ApiKey)
                .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            done = bool(revoked.rowcount)  # type: ignore[attr-defined]
        if self._cache is not None:
            # After the commit: a record read from PostgreSQL from now on says revoked.
            self._cache.revoked(key_id)
        return done

    def listing(self, client: str | None = None) -> list[KeyListing]:
        """Every key (of ``client``, when given), oldest first, with its last use."""
        statement = sa.select(ApiKey).order_by(ApiKey.id)
        if client:
            statement = statement.where(ApiKey.client == client)
        with self._sessions() as session:
            return [
                KeyListing(
                    row.key_id,
                    row.client,
                    list(row.scopes),
                    row.created_at,
                    row.last_used_at,
                    row.revoked_at,
                )
                for row in session.scalars(statement)
            ]
