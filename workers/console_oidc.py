"""Staff sign-in through an OpenID Connect provider, by Authlib's Flask client.

The authorization code flow with PKCE (S256), with the state, nonce and code verifier kept in
the signed session until the browser comes back. The id_token must be RS256-signed by a key of
the provider's JWKS (whatever else the provider says it signs with), from this issuer, for
this client (an ``azp`` must name it, and a token for several audiences must carry one),
unexpired, with the nonce this browser was given and, when it has an ``at_hash``, the hash of
the access token it came with. The discovery document and the keys are read again once they
are older than the configured age, and the keys at once when a token names one not yet seen
(the provider rotated its keys). Sign-out sends the id_token back to the provider's
end-session endpoint, so the provider's session ends too.

The actor recorded in history is ``oidc:<sub>``, the provider's stable subject; the
preferred_username is only shown. Roles come from one claim, mapped to the console's roles by
configuration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import request, session
from joserfc.errors import ClaimError, JoseError
from werkzeug.wrappers import Response

from config.settings import Settings
from services.sending import validation
from services.support.sessions import OIDC_PREFIX
from services.support.staff import StaffUser

log = logging.getLogger(__name__)

# Authlib keeps a pending sign-in in the session under "_state_<name>_<state>".
NAME = "console"
PENDING_PREFIX = f"_state_{NAME}_"
SCOPE = "openid profile email"
TIMEOUT_SECONDS = 5.0
LEEWAY_SECONDS = 60
# Tried in this order when the provider's discovery document lists what it accepts.
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# An actor is stored in 100 characters (interaction_events.actor, staff_sessions.actor).
MAX_ACTOR_CHARS = 100


class OidcError(Exception):
    """Sign-in through the provider failed; the message is safe to show."""


@dataclass(frozen=True)
class SignedIn:
    """Whom the provider vouched for, and the id_token it did so with (kept for sign-out)."""

    user: StaffUser
    # A bearer credential: never in a repr, so never in a log line or a traceback.
    id_token: str = field(repr=False)


class OidcClient:
    """One confidential (or public, without a secret) client of the configured provider.

    Each Authlib client lives as long as the discovery document it read: past the maximum
    age the next request builds a new one, which reads the document and the keys again.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        if not settings.console_oidc_issuer or not settings.console_oidc_client_id:
            raise ValueError("OIDC needs an issuer and a client id")
        self._issuer = settings.console_oidc_issuer.rstrip("/")
        self._client_id = settings.console_oidc_client_id
        secret = settings.console_oidc_client_secret
        self._secret = secret.get_secret_value() if secret else None
        self._auth_method = settings.console_oidc_token_auth_method
        self._max_age = float(settings.console_oidc_metadata_max_age_seconds)
        self._roles_claim = settings.console_oidc_roles_claim
        self._role_map = dict(settings.console_oidc_role_map)
        self._clock = clock
        self._lock = threading.Lock()
        self._provider: Any = None
        self._read_at = 0.0

    def start(self, redirect_uri: str) -> Response:
        """The redirect to the provider; the sign-in's secrets wait in the session."""
        provider = self._current()
        # One sign-in pending per browser: abandoned ones would only grow the cookie.
        for key in [key for key in session if key.startswith(PENDING_PREFIX)]:
            session.pop(key)
        redirect: Response = provider.authorize_redirect(redirect_uri)
        return redirect

    def finish(self) -> SignedIn:
        """The user the provider vouches for, from its answer on this request's redirect URI."""
        provider = self._current()
        try:
            token = provider.authorize_access_token(
                claims_options=self._claims_options(provider), leeway=LEEWAY_SECONDS
            )
        except MismatchingStateError as exc:
            raise OidcError(
                "the sign-in did not start here, or took too long: start again"
            ) from exc
        except OAuthError as exc:
            if request.args.get("error"):
                raise OidcError("the sign-in provider did not sign you in") from exc
            raise OidcError("the sign-in provider did not issue a token") from exc
        except ClaimError as exc:
            if exc.claim == "nonce":
                raise OidcError("the sign-in provider's answer was not for this sign-in") from exc
            raise OidcError("the sign-in provider's token could not be verified") from exc
        except JoseError as exc:
            raise OidcError("the sign-in provider's token could not be verified") from exc
        except (requests.RequestException, ValueError) as exc:
            raise OidcError("the sign-in provider could not be reached") from exc
        claims = token.get("userinfo")
        if not isinstance(claims, dict):
            raise OidcError("the sign-in provider did not issue a token")
        return SignedIn(self._staff_user(claims), str(token["id_token"]))

    def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser so the provider's session ends too; None if it cannot."""
        try:
            provider = self._current()
            if not provider.load_server_metadata().get("end_session_endpoint"):
                return None
            logout = provider.create_logout_url(
                post_logout_redirect_uri=post_logout_redirect_uri,
                id_token_hint=id_token,
                client_id=self._client_id,
            )
        except OidcError as exc:
            log.warning("console sign-out ended the console's session only: %s", exc)
            return None
        return str(logout["url"])

    def end_session_origin(self) -> str | None:
        """The origin of the provider's end-session endpoint, if its document was read already.

        Never reads the document itself: it is asked for on every page's security policy.
        """
        with self._lock:
            provider = self._provider
        if provider is None:
            return None
        endpoint = urlsplit(str(provider.server_metadata.get("end_session_endpoint") or ""))
        return f"{endpoint.scheme}://{endpoint.netloc}" if endpoint.netloc else None

    def _current(self) -> Any:
        """Authlib's client, holding a discovery document no older than the maximum age."""
        with self._lock:
            now = self._clock()
            if self._provider is None or now - self._read_at >= self._max_age:
                self._provider = self._discovered()
                self._read_at = now
            return self._provider

    def _discovered(self) -> Any:
        provider = FlaskOAuth2App(
            FlaskIntegration(NAME),
            NAME,
            client_id=self._client_id,
            client_secret=self._secret,
            server_metadata_url=f"{self._issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": SCOPE,
                "code_challenge_method": "S256",
                "default_timeout": TIMEOUT_SECONDS,
            },
        )
        try:
            metadata = provider.load_server_metadata()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError("the sign-in provider could not be reached") from exc
        if str(metadata.get("issuer", "")).rstrip("/") != self._issuer:
            raise OidcError("the sign-in provider names another issuer")
        # Authlib passes the document to each request's session as settings: what the console
        # insists on goes last, whatever the document says. Keys come from jwks_uri only.
        metadata.pop("jwks", None)
        metadata.update(
            scope=SCOPE,
            code_challenge_method="S256",
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_method=self._token_auth_method(metadata),
        )
        return provider

    def _token_auth_method(self, metadata: dict[str, Any]) -> str:
        """How to prove this client at the token endpoint: as configured, or as offered."""
        if not self._secret:
            return "none"
        if self._auth_method:
            return self._auth_method
        # OIDC Discovery: a provider that lists nothing accepts client_secret_basic.
        offered = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        for method in TOKEN_AUTH_METHODS:
            if method in offered:
                return method
        raise OidcError("the sign-in provider accepts no client secret this console can send")

    def _claims_options(self, provider: Any) -> dict[str, Any]:
        # A new dict each time: Authlib takes hooks out of the options it is given.
        return {
            "iss": {"essential": True, "values": [provider.server_metadata["issuer"]]},
            "aud": {"essential": True, "values": [self._client_id]},
        }

    def _staff_user(self, claims: dict[str, Any]) -> StaffUser:
        """The console's user for verified claims: the subject as actor, the mapped roles."""
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
