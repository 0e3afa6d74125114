"""Notify's API keys and the bearer tokens signed with them, checked as Notify checks them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from devtools.stub.notifications import UUID_PATTERN

TOKEN_MAX_AGE_SECONDS = 30


def split_api_key(key: str) -> tuple[str, str]:
    """The service id and secret of a Notify key '{name}-{service id}-{secret}'."""
    service_id, secret = key[-73:-37], key[-36:]
    if len(key) < 73 or not (UUID_PATTERN.match(service_id) and UUID_PATTERN.match(secret)):
        raise ValueError("an API key ends with '{service id}-{secret}', two 36-character UUIDs")
    return service_id, secret


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_token(token: str, service_id: str, secret: str, now: float) -> str | None:
    """Why Notify would refuse ``token`` (HS256, issued by the service within 30 s), or None."""
    try:
        header, claims, signature = token.split(".")
        alg = json.loads(_b64decode(header)).get("alg")
        payload = json.loads(_b64decode(claims))
        given = _b64decode(signature)
    except (ValueError, AttributeError):
        return "Invalid token: not a JWT"
    if alg != "HS256":
        return "Invalid token: algorithm used is not HS256"
    expected = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    if not isinstance(payload, dict) or payload.get("iss") != service_id:
        return "Invalid token: service not found"
    if not hmac.compare_digest(expected, given):
        return "Invalid token: signature, api token not found"
    issued_at = payload.get("iat")
    if not isinstance(issued_at, int | float) or abs(now - issued_at) > TOKEN_MAX_AGE_SECONDS:
        return "Error: Your system clock must be accurate to within 30 seconds"
    return None


def token_issuer(token: str) -> str:
    """The issuer (service id) a token claims, unverified; '' when it claims none."""
    try:
        payload = json.loads(_b64decode(token.split(".")[1]))
    except (ValueError, IndexError):
        return ""
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else ""
