"""API keys' verified records in the broker's Redis, read in the same round trip as the rate.

Every API request needs its key checked and its client's request counted. The key's record
(the hash of its secret, its client and its scopes) is kept in Redis for ``TTL_SECONDS`` after
PostgreSQL has said the key is live; one script then checks the presented secret's hash
against it and counts the request, so a request makes one Redis round trip and no database
one. Redis is shared by every API process and host, so a revocation is seen by all of them at
once: ``revoked`` overwrites the record with a tombstone, and a record read from PostgreSQL
is stored only where nothing is (``SET NX``), so a read that raced a revocation cannot put
the live record back. A key whose record has expired is read from PostgreSQL again, which is
also when its last use is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from services.clients.identity import Caller, Scope

PREFIX = "interactions:api:key"
# How long a verified record is trusted without PostgreSQL; revocation does not wait for it.
TTL_SECONDS = 60
REVOKED = "revoked"
KNOWN = frozenset(scope.value for scope in Scope)

# KEYS[1] the key's record; ARGV: the presented secret's hash, the rate's key prefix, the
# window's number and its expiry. Counts only a request whose secret matches the record.
# The rate's key is built here from the record's client: one Redis, not a cluster.
_CHECK_AND_COUNT = """
local record = redis.call('GET', KEYS[1])
if not record then return {0, '', 0} end
if record == 'revoked' then return {1, '', 0} end
local sha, client, scopes = string.match(record, '^([^|]*)|([^|]*)|(.*)$')
if sha ~= ARGV[1] then return {1, '', 0} end
local rate = ARGV[2] .. ':' .. client .. ':' .. ARGV[3]
local count = redis.call('INCR', rate)
if count == 1 then redis.call('EXPIRE', rate, ARGV[4]) end
return {2, client .. '|' .. scopes, count}
"""


class Found(Enum):
    """What Redis holds for a key."""

    NOTHING = 0  # not cached: ask PostgreSQL
    REFUSED = 1  # revoked, or the secret does not match
    LIVE = 2  # counted


@dataclass(frozen=True)
class Checked:
    """The outcome of one check: the caller and its request count when the key is live."""

    found: Found
    caller: Caller | None = None
    count: int = 0


class KeyCache:
    """Verified key records in Redis, checked and counted in one script."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = TTL_SECONDS) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._script: Any = client.register_script(_CHECK_AND_COUNT)

    def check_and_count(
        self, key_id: str, secret_sha256: str, rate_prefix: str, window: int, expiry: int
    ) -> Checked:
        """The key's record checked against ``secret_sha256``; a live one's request counted."""
        status, record, count = self._script(
            keys=[f"{PREFIX}:{key_id}"], args=[secret_sha256, rate_prefix, window, expiry]
        )
        found = Found(int(status))
        if found is not Found.LIVE:
            return Checked(found)
        client, _, scopes = record.decode().partition("|")
        named = frozenset(Scope(s) for s in scopes.split(",") if s in KNOWN)
        return Checked(found, Caller(client, named), int(count))

    def remember(self, key_id: str, secret_sha256: str, client: str, scopes: list[str]) -> None:
        """Keep a record PostgreSQL just said is live, unless a revocation is already there."""
        record = f"{secret_sha256}|{client}|{','.join(scopes)}"
        self._redis.set(f"{PREFIX}:{key_id}", record, ex=self._ttl, nx=True)

    def revoked(self, key_id: str) -> None:
        """Refuse the key on every host from now on (PostgreSQL says so once this expires)."""
        self._redis.set(f"{PREFIX}:{key_id}", REVOKED, ex=self._ttl)
