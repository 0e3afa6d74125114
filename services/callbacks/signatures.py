"""Checking who sent a callback: bearer tokens by hash, Standard Webhooks signatures by HMAC.

Every comparison is constant-time, every secret list allows several live values so they can
be rotated, and nothing here parses the body: it is checked as the raw bytes that arrived.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


class Unauthenticated(Exception):
    """The caller did not prove it is the provider; the reason is for our logs, not the caller."""


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a bearer token: what settings keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class BearerVerifier:
    """Accepts ``Authorization: Bearer <token>`` whose SHA-256 is one of the configured hashes."""

    token_hashes: Sequence[str]

    def verify(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless the header carries an accepted token."""
        if not self.token_hashes:
            raise Unauthenticated("no callback token is configured")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token")
        presented = token_sha256(token.strip())
        # Compare against every hash, so the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(presented, known.lower()) for known in self.token_hashes]
        if not any(matches):
            raise Unauthenticated("unknown bearer token")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_``-prefixed Standard Webhooks secret."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError("a signing secret must be whsec_ followed by base64") from None
    if len(key) < 24:
        raise ValueError("a signing secret must hold at least 24 random bytes")
    return key


def sign(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class StandardWebhooksVerifier:
    """Verifies ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` on raw bytes."""

    keys: Sequence[bytes]
    tolerance_seconds: int = 300

    def verify(
        self,
        webhook_id: str | None,
        timestamp: str | None,
        signatures: str | None,
        body: bytes,
        now: float,
    ) -> None:
        """Raise Unauthenticated unless one signature matches one key, in time."""
        if not self.keys:
            raise Unauthenticated("no signing secret is configured")
        if not webhook_id or not timestamp or not signatures:
            raise Unauthenticated("missing webhook-id, webhook-timestamp or webhook-signature")
        if len(webhook_id) > 255:
            raise Unauthenticated("webhook-id too long")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise Unauthenticated("webhook-timestamp is not a number") from None
        if abs(now - sent_at) > self.tolerance_seconds:
            raise Unauthenticated("webhook-timestamp outside the tolerance")
        offered = [s for s in signatures.split(" ") if s.startswith("v1,")]
        expected = [sign(key, webhook_id, timestamp, body) for key in self.keys]
        matches = [hmac.compare_digest(o, e) for o in offered for e in expected]
        if not any(matches):
            raise Unauthenticated("no signature matches")
