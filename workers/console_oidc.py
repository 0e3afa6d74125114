"""Staff sign-in through an OpenID Connect provider: the authorization code flow with PKCE.

The provider is found by its discovery document; the id_token must be RS256-signed by a key
of its JWKS, for this client (and issued to it: ``azp``, when present, must name it), from
this issuer, unexpired, and carry the nonce this browser was given. The actor recorded in
history is ``oidc:<sub>``, the provider's stable subject; the preferred_username is only
shown. Roles come from one claim, mapped to the console's roles by configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import requests

from config.settings import Settings
from services.sending import validation
from services.support.sessions import OIDC_PREFIX
from services.support.staff import StaffUser

TIMEOUT_SECONDS = 5.0
LEEWAY_SECONDS = 60
# An actor is stored in 100 characters (interaction_events.actor, staff_sessions.actor).
MAX_ACTOR_CHARS = 100


class OidcError(Exception):
    """Sign-in through the provider failed; the message is safe to show."""


@dataclass(frozen=True)
class Endpoints:
    """What the provider's discovery document says."""

    issuer: str
    authorization: str
    token: str
    jwks: str


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OidcClient:
    """One confidential (or public, without a secret) client of the configured provider."""

    def __init__(self, settings: Settings) -> None:
        if not settings.console_oidc_issuer or not settings.console_oidc_client_id:
            raise ValueError("OIDC needs an issuer and a client id")
        self._issuer = settings.console_oidc_issuer.rstrip("/")
        self._client_id = settings.console_oidc_client_id
        secret = settings.console_oidc_client_secret
        self._secret = secret.get_secret_value() if secret else None
        self._roles_claim = settings.console_oidc_roles_claim
        self._role_map = dict(settings.console_oidc_role_map)
        self._lock = threading.Lock()
        self._endpoints: Endpoints | None = None
        self._keys: jwt.PyJWKClient | None = None

    def endpoints(self) -> Endpoints:
        """The provider's endpoints, read once from its discovery document."""
        with self._lock:
            if self._endpoints is None:
                url = f"{self._issuer}/.well-known/openid-configuration"
                try:
                    response = requests.get(url, timeout=TIMEOUT_SECONDS)
                    response.raise_for_status()
                    document = response.json()
                    found = Endpoints(
                        issuer=str(document["issuer"]).rstrip("/"),
                        authorization=str(document["authorization_endpoint"]),
                        token=str(document["token_endpoint"]),
                        jwks=str(document["jwks_uri"]),
                    )
                except (requests.RequestException, ValueError, KeyError) as exc:
                    raise OidcError("the sign-in provider could not be reached") from exc
                if found.issuer != self._issuer:
                    raise OidcError("the sign-in provider names another issuer")
                self._endpoints = found
                self._keys = jwt.PyJWKClient(found.jwks, timeout=int(TIMEOUT_SECONDS))
            return self._endpoints

    def start(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what to keep in the session until the return."""
        pending = {
            "state": secrets.token_urlsafe(24),
            "nonce": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48),
        }
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile email",
                "state": pending["state"],
                "nonce": pending["nonce"],
                "code_challenge": _challenge(pending["verifier"]),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.endpoints().authorization}?{query}", pending

    def finish(
        self, pending: Mapping[str, str], redirect_uri: str, answer: Mapping[str, str]
    ) -> StaffUser:
        """The user the provider vouches for, from its answer on the redirect URI."""
        if answer.get("error"):
            raise OidcError("the sign-in provider did not sign you in")
        state = answer.get("state", "")
        if not pending or not hmac.compare_digest(state.encode(), pending["state"].encode()):
            raise OidcError("the sign-in did not start here, or took too long: start again")
        claims = self._verified(self._exchange(answer.get("code", ""), pending, redirect_uri))
        if not hmac.compare_digest(
            str(claims.get("nonce", "")).encode(), pending["nonce"].encode()
        ):
            raise OidcError("the sign-in provider's answer was not for this sign-in")
        # The subject is the provider's stable id for the person; a user name can be reused.
        actor = f"{OIDC_PREFIX}{claims['sub']}"
        if len(actor) > MAX_ACTOR_CHARS or not validation.is_printable(actor):
            raise OidcError("the sign-in provider gave no usable subject")
        shown = claims.get("preferred_username")
        if not isinstance(shown, str) or len(shown) > 100 or not validation.is_printable(shown):
            shown = None
        granted = claims.get(self._roles_claim) or []
        if isinstance(granted, str):
            granted = [granted]
        roles = sorted({self._role_map[r] for r in granted if r in self._role_map})
        return StaffUser(actor, tuple(roles), shown or None)

    def _exchange(self, code: str, pending: Mapping[str, str], redirect_uri: str) -> str:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id,
            "code_verifier": pending["verifier"],
        }
        auth = (self._client_id, self._secret) if self._secret else None
        try:
            response = requests.post(
                self.endpoints().token, data=data, auth=auth, timeout=TIMEOUT_SECONDS
            )
            body: Any = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError("the sign-in provider could not be reached") from exc
        if response.status_code != 200 or not isinstance(body, dict) or "id_token" not in body:
            raise OidcError("the sign-in provider did not issue a token")
        return str(body["id_token"])

    def _verified(self, id_token: str) -> dict[str, Any]:
        endpoints = self.endpoints()
        assert self._keys is not None
        try:
            key = self._keys.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=endpoints.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                # Allows for clocks a minute apart; no more, so an expired token stays refused.
                leeway=LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            raise OidcError("the sign-in provider's token could not be verified") from exc
        if not self._authorized_here(claims):
            raise OidcError("the sign-in provider's token could not be verified")
        return claims

    def _authorized_here(self, claims: dict[str, Any]) -> bool:
        """Whether the token was issued to this client: ``azp``, when present, names it."""
        # A token for several audiences may have been issued to one of the others (OIDC Core
        # 3.1.3.7): then only an azp naming this client makes it ours.
        several = isinstance(claims["aud"], list) and len(claims["aud"]) > 1
        if "azp" not in claims:
            return not several
        return hmac.compare_digest(str(claims["azp"]).encode(), self._client_id.encode())
