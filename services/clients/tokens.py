"""OAuth2 client-credentials tokens from the organisation's identity provider."""

from __future__ import annotations

from typing import Any

import jwt

from services.clients.identity import Caller, Scope, Unauthenticated

OURS = frozenset(scope.value for scope in Scope)


class TokenVerifier:
    """Checks a JWT's signature (by the issuer's JWKS), issuer, audience and expiry."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: jwt.PyJWKClient,
        algorithms: list[str],
        client_claim: str,
        scope_claim: str,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks = jwks
        self._algorithms = algorithms
        self._client_claim = client_claim
        self._scope_claim = scope_claim

    def caller(self, token: str) -> Caller:
        """The client the token was issued to and its scopes; Unauthenticated if it is not good."""
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError):
            raise Unauthenticated from None
        client = claims.get(self._client_claim) or claims.get("client_id") or claims.get("sub")
        if not isinstance(client, str) or not client:
            raise Unauthenticated
        raw = claims.get(self._scope_claim, "")
        words = raw if isinstance(raw, list) else str(raw).split()
        # A token may carry scopes meant for other services: only ours are kept.
        scopes = frozenset(Scope(word) for word in words if word in OURS)
        return Caller(f"jwt:{client}"[:64], scopes)
